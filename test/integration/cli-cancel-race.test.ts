/**
 * Ctrl-C at any moment of `backup create --json`, end to end with the built CLI: each run sends
 * SIGINT at another moment (a random offset from the spawn, early or anywhere in the backup; once
 * the repository lock exists; once the COPY runs on the server) to the process alone, to its process group (as a
 * terminal does: pg_dump dies of it too) or to both (as `timeout` does: the same interrupt twice).
 * Every run must end as a cancel (exit 130, the error line, the JSON error document) or, after
 * the commit point, as a success that says the cancel came too late; and no lock may be left.
 * The moments are drawn from a seeded generator: the seed is printed, CAIRN_CANCEL_SEED=<seed>
 * replays a run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { seededRandom } from '../../src/storage/middleware/faults.js';
import { CLI } from '../helpers/cli.js';
import { createDatabase, dropDatabase, ensurePostgres, pgUrl, psql } from '../helpers/postgres.js';

const RUNS = 12;
const SEED = Number(process.env.CAIRN_CANCEL_SEED ?? Date.now() % 2 ** 31);

let work: string;
let db: string;
let observer: pg.Client;

/** Polls `check` (a cheap read of state another process changes) until it holds or the child ended. */
async function until(check: () => boolean | Promise<boolean>, ended: () => boolean): Promise<boolean> {
  for (;;) {
    if (await check()) return true;
    if (ended()) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The lock objects in a file-system repository (none before the first lock made the folder). */
function locksIn(repo: string): string[] {
  try {
    return readdirSync(join(repo, 'locks'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

beforeAll(async () => {
  ensurePostgres();
  work = mkdtempSync(join(tmpdir(), 'cairn-cancel-race-'));
  db = createDatabase('cancelrace');
  // Large enough that a backup takes a couple of seconds here, so the moments fall inside it.
  psql(db, 'CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, 800000) g; CREATE TABLE small (id int); INSERT INTO small VALUES (1);');
  observer = new pg.Client({ connectionString: pgUrl('postgres') });
  await observer.connect();
}, 120_000);

afterAll(async () => {
  await observer?.end();
  if (db) dropDatabase(db);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.sequential('Ctrl-C during backup create --json', () => {
  it(`every cancel prints the error, exits 130 (or 0, too late) and leaves no lock (${RUNS} runs, seed ${SEED})`, async () => {
    console.log(`cli-cancel-race: seed ${SEED} (replay with CAIRN_CANCEL_SEED=${SEED})`);
    const rnd = seededRandom(SEED);
    const points = ['spawn', 'lock', 'copy', 'offset'] as const;
    const targets = ['process', 'group', 'both'] as const;
    const outcomes: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const repo = join(work, `repo-${i}`);
      await Repository.init(new FileSystemStorage(repo));
      const point = points[i % points.length] as (typeof points)[number];
      const target = targets[Math.floor(rnd() * targets.length)] as (typeof targets)[number];
      const extraMs = point === 'offset' ? Math.floor(rnd() * 2000) : point === 'spawn' ? Math.floor(rnd() * 300) : Math.floor(rnd() * 40);
      const label = `run ${i} (seed ${SEED}): SIGINT to the ${target} ${extraMs} ms after "${point}"`;

      const child = spawn(process.execPath, [CLI, 'backup', 'create', '--source', pgUrl(db), '--repo', repo, '--json'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group, so that kill(-pid) reaches it and its children, not vitest.
        detached: true,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      let ended = false;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => {
          ended = true;
          resolve({ code, signal });
        }),
      );
      const pid = child.pid as number;

      await new Promise((resolve) => child.once('spawn', resolve));
      let reached = true;
      if (point === 'lock') {
        reached = await until(() => locksIn(repo).length > 0, () => ended);
      } else if (point === 'copy') {
        reached = await until(
          async () =>
            (await observer.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY%'", [db])).rowCount !== 0,
          () => ended,
        );
      }
      // The randomized delay is this test's input (when the signal lands), not synchronisation.
      if (reached) await new Promise((resolve) => setTimeout(resolve, extraMs));
      let sent = false;
      if (!ended) {
        if (target !== 'group') process.kill(pid, 'SIGINT');
        if (target !== 'process') process.kill(-pid, 'SIGINT');
        sent = true;
      }
      const r = await exited;
      const result = `${label}: exit ${r.code ?? r.signal}${sent ? '' : ' (ended before the signal)'}\n--- stderr\n${stderr}--- stdout\n${stdout}`;
      if (r.signal !== null) {
        // Only before Node runs cairn's first line (its start-up, some tens of ms) does the
        // signal end the process as it ends any program: nothing printed, nothing taken yet.
        expect(r.signal, result).toBe('SIGINT');
        expect(point === 'spawn' || point === 'offset', result).toBe(true);
        expect(extraMs, result).toBeLessThan(1000);
        expect(stdout + stderr, result).toBe('');
      } else if (r.code === 0) {
        // Finished before the signal, or the cancel landed after the manifest was written.
        if (sent) expect(stderr, result).toContain('the cancel came too late');
        expect((JSON.parse(stdout) as { id?: string }).id, result).toBeTypeOf('string');
      } else {
        expect(r.code, result).toBe(130);
        expect(stderr, result).toMatch(/^cairn: error: .*Cancel/m);
        const doc = JSON.parse(stdout) as { error?: { code: string; exitCode: number } };
        expect(doc.error, result).toMatchObject({ code: 'CANCELLED', exitCode: 130 });
      }
      expect(locksIn(repo), `${result}\nlock files left`).toEqual([]);
      outcomes.push(`${i}:${point}/${target}/${extraMs}ms→${r.code ?? r.signal}`);
    }
    console.log(`cli-cancel-race: ${outcomes.join(' ')}`);
    // The runs exercised cancels, not only backups that finished first.
    expect(outcomes.filter((o) => o.endsWith('→130')).length).toBeGreaterThanOrEqual(RUNS / 2);
  }, 300_000);
});
