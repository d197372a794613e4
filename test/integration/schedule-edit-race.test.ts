/**
 * Schedule edits that overlap keep both changes, and a tick that read a schedule before an edit
 * does not fire the old cron's due time.
 *
 * PATCH /v1/schedules/{name} checks a repository it names by opening it (an await). Here that
 * repository's config is a FIFO, so the first PATCH waits, deterministically, inside its check
 * until the test feeds the FIFO; meanwhile a second PATCH (another field) and `cairn schedule
 * edit` from another process (a third field) complete. Merged on the stale read, the first
 * PATCH used to write the others' fields back as they were.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteScheduleStore } from '../../src/catalog/schedules.js';
import { SqliteJobCatalog } from '../../src/catalog/sqlite.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { JobCenter } from '../../src/jobs/job-center.js';
import { scheduledBackupLauncher } from '../../src/jobs/scheduled-backup.js';
import { buildScheduleSpec, scheduleEdit } from '../../src/jobs/schedule-spec.js';
import { Scheduler, type Launched } from '../../src/jobs/scheduler.js';
import { CONFIG_KEY, Repository } from '../../src/repo/repository.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer } from '../../src/server/index.js';
import { openSource } from '../../src/sources/index.js';
import Database from '../../src/sources/sqlite/driver.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { cairnRun } from '../helpers/cli.js';

let work: string;

const smallDb = (file: string): string => {
  const db = new Database(file);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a');");
  db.close();
  return file;
};

beforeAll(() => {
  work = fs.mkdtempSync(join(tmpdir(), 'cairn-sched-race-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/**
 * Resolves with a write end of `fifo` once a reader is inside open() on it (a non-blocking
 * open for writing fails with ENXIO until then); the reader then waits for the data.
 */
async function readerWaiting(fifo: string, ms = 20_000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setImmediate(r)); // let the server (this process) get there
  }
}

describe('overlapping schedule edits', () => {
  it('a PATCH held in its repository check, a second PATCH and a CLI edit meanwhile: all three changes survive', async () => {
    const dataDir = join(work, 'data');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('admin', 'first').token;
    store.close();
    const slow = join(work, 'slow-repo');
    await Repository.init(new FileSystemStorage(slow));
    const server = await startServer({ dataDir, port: 0, scheduleTickMs: 3600_000, env: {} });
    const configFile = join(slow, CONFIG_KEY);
    const config = fs.readFileSync(configFile);
    try {
      const c = new CairnClient({ url: server.url, token });
      await c.repositories.add('slow', slow);
      await c.sources.add('small', `sqlite://${smallDb(join(work, 'small.db'))}`);
      await c.schedules.create({ name: 'nightly', source: 'small', repository: 'slow', cron: '0 3 * * *', keepLast: 7 });

      // From now on, opening the repository waits until the test writes its config.
      fs.rmSync(configFile);
      expect(spawnSync('mkfifo', ['-m', '600', configFile]).status).toBe(0);
      const first = c.schedules.update('nightly', { repository: 'slow', cron: '15 4 * * *' });
      first.catch(() => undefined); // awaited below; no unhandled rejection meanwhile
      const writer = await readerWaiting(configFile);
      try {
        // The first PATCH has read the schedule and waits in its check: change other fields.
        expect((await c.schedules.update('nightly', { keepLast: 3 })).retention).toEqual({ keepLast: 3 });
        const cli = await cairnRun(['schedule', 'edit', 'nightly', '--keep-weekly', '4', '--data-dir', dataDir]);
        expect(cli.code, cli.stderr).toBe(0);
        fs.writeSync(writer, config);
      } finally {
        fs.closeSync(writer);
      }
      const answered = await first;
      const stored = (await c.schedules.get('nightly')).schedule;
      for (const s of [answered, stored]) {
        expect(s).toMatchObject({ cron: '15 4 * * *', repository: 'slow', retention: { keepLast: 3, keepWeekly: 4 } });
      }
    } finally {
      fs.rmSync(configFile, { force: true });
      fs.writeFileSync(configFile, config);
      await server.close();
    }
  }, 60_000);

  it('an edit that throws inside the transaction (invalid merge) changes nothing', () => {
    const store = new SqliteScheduleStore(join(work, 'store.db'));
    try {
      store.add(buildScheduleSpec({ name: 's', source: 'sqlite:///x.db', repository: '/r', cron: '0 3 * * *', keepLast: 2 }, new Date()));
      const before = store.get('s');
      expect(() => store.update('s', scheduleEdit({ cron: 'whenever' }, new Date()))).toThrow(/Invalid cron "whenever"/);
      expect(store.get('s')).toEqual(before);
      const after = store.update('s', scheduleEdit({ keepDaily: 5 }, new Date()));
      expect(after).toMatchObject({ cron: '0 3 * * *', retention: { keepLast: 2, keepDaily: 5 }, lastDue: null });
    } finally {
      store.close();
    }
  });
});

describe('the scheduler and an edit during a tick', () => {
  it("a schedule edited while the tick starts an earlier one's run does not fire the old cron's due time", async () => {
    const catalog = join(work, 'tick-catalog.db');
    const store = new SqliteScheduleStore(catalog);
    const jobCatalog = new SqliteJobCatalog(catalog);
    const center = new JobCenter(jobCatalog);
    const repository = await Repository.init(new FileSystemStorage(join(work, 'tick-repo')));
    const clock = { now: new Date('2024-01-01T09:00:00Z') };
    const now = (): Date => new Date(clock.now.getTime());
    const launchBackup = scheduledBackupLauncher({ center, now, openRepository: async () => repository, openSource });
    // The launch of schedule "a" (listed first) waits until the test has edited "b".
    let entered!: () => void;
    const inLaunch = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const launch = async (spec: Parameters<typeof launchBackup>[0], dueAt: Date): Promise<Launched> => {
      if (spec.name === 'a') {
        entered();
        await gate;
      }
      return launchBackup(spec, dueAt);
    };
    const scheduler = new Scheduler(store, { now, launch });
    try {
      for (const name of ['a', 'b']) {
        store.add(buildScheduleSpec({ name, source: `sqlite://${smallDb(join(work, `tick-${name}.db`))}`, repository: repository.location, cron: '0 10 * * *' }, now()));
      }
      clock.now = new Date('2024-01-01T10:00:30Z'); // both due at 10:00
      const tick = scheduler.tick();
      await inLaunch;
      // b moves to 10:30; due times count from the edit (10:00:30), so 10:00 is not b's any more.
      expect(store.update('b', scheduleEdit({ cron: '30 10 * * *' }, now())).lastDue).toBe('2024-01-01T10:00:30.000Z');
      release();
      const started = await tick;
      await scheduler.idle();
      expect(started).toHaveLength(1);
      expect(store.runs('a').map((r) => [r.dueAt, r.status])).toEqual([['2024-01-01T10:00:00.000Z', 'started']]);
      expect(store.runs('b')).toEqual([]);
      clock.now = new Date('2024-01-01T10:31:00Z'); // the new cron's due time does fire
      const later = await scheduler.tick();
      await scheduler.idle();
      expect(later).toHaveLength(1);
      expect(store.runs('b').map((r) => [r.dueAt, r.status])).toEqual([['2024-01-01T10:30:00.000Z', 'started']]);
    } finally {
      store.close();
      await jobCatalog.close();
    }
  }, 60_000);
});
