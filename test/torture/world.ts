/**
 * Runs one step list against real repositories with the built CLI and checks, after every step,
 * that the repository kept its promise: every listed backup verifies with --read-data and
 * restores to exactly the content the model recorded for it; nothing the model knows as complete
 * disappears; a killed operation leaves all or nothing; damage is reported where it is and only
 * there, and after `cairn repair` everything else still restores exactly.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeResult, PROJECT_ROOT, runCairn, runCairnInProcess, type ChildResult } from './child.js';
import { Rng } from './random.js';
import { capture, createSource, mutateSource, type Content } from './source.js';
import { describeStep, type Step } from './steps.js';
import { fsStore, packBlobs, s3Store, type PackBlob, type RawStore } from './store.js';

export interface S3Setup {
  /** s3rver itself (for direct damage). */
  directUrl: string;
  /** The fault proxy in front of it (what cairn talks to). */
  proxyUrl: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export interface RunConfig {
  backend: 'fs' | 's3';
  s3?: S3Setup;
  /** `cairn repair` exists in the built CLI: damage steps run (else they are skipped with a note). */
  hasRepair: boolean;
  /** Per-child timeout (ms). */
  timeoutMs?: number;
  log?: (line: string) => void;
  /** Keep the temp folder (for debugging a failure). */
  keep?: boolean;
  /** `cairn unlock` exists (else a damaged lock is removed by hand). */
  hasUnlock?: boolean;
  /** Every prune with the default grace period (old main has no --grace option). */
  pruneGrace?: boolean;
  /**
   * Both repositories encrypted (`repo init --encryption`, the password in CAIRN_PASSWORD). Damage
   * steps are left out: their model reads and edits packs as plain bytes (per-blob containment),
   * while an encrypted pack fails as a whole; test/integration/encryption.test.ts covers that.
   */
  encrypted?: boolean;
}

export interface Violation {
  /** Index of the step after which (or during which) the violation was seen. */
  step: number;
  stepText: string;
  /** A short stable label, used by the shrinker to keep the same failure. */
  kind: string;
  message: string;
}

export interface RunResult {
  violation?: Violation;
  stepsRun: number;
  ms: number;
  stepMs: number[];
  notes: string[];
  counts: Record<string, number>;
}

type State =
  /** Its create exited 0 (or it was seen listed after an uncertain end): it must be listed. */
  | 'complete'
  /** Its create was killed or failed: listed (then complete) or absent. */
  | 'uncertain'
  /** Its delete was killed or failed: listed (then complete) or absent. */
  | 'maybeDeleted'
  /** Depends on damaged data: may be absent, may fail verify/restore with exit 6, never restores wrong content. */
  | 'damaged';

interface ModelBackup {
  id: string;
  state: State;
  /** Digests of the contents it may hold (one, or two when the source changed while it ran). */
  candidates: string[];
  /** Once a restore matched one candidate, the backup must always restore to it. */
  pinned?: string;
  /** Collections repair reported as having lost data: the rest must still restore (--exclude them). */
  lost?: Set<string>;
  /** set-expiry to the past: true (done), 'maybe' (set-expiry failed or was killed). */
  expired?: boolean | 'maybe';
  seq: number;
}

class ViolationError extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

interface RepoSide {
  name: 'A' | 'B';
  url: string;
  raw: RawStore;
  model: Map<string, ModelBackup>;
  dirty: boolean;
  /** "id" → collection → chunk ids (from `backup show --json`, cached: manifests' chunk lists never change). */
  chunkCache: Map<string, Record<string, string[]>>;
}

let runCounter = 0;

/** Temp folders of runs in progress, removed by removeLiveTempDirs() when the harness is interrupted. */
const liveDirs = new Set<string>();

/** Removes the temp folders of runs in progress (on Ctrl-C; the runs' own teardown cannot run then). */
export function removeLiveTempDirs(): void {
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}

/** The harness keeps at most this many backups in the main repository and in the copy target. */
const MAX_BACKUPS_A = 6;
const MAX_BACKUPS_B = 3;

export async function runSequence(steps: Step[], config: RunConfig): Promise<RunResult> {
  const world = new World(config);
  const started = Date.now();
  const stepMs: number[] = [];
  let i = 0;
  try {
    await world.setup();
    for (; i < steps.length; i++) {
      const t0 = Date.now();
      const step = steps[i]!;
      await world.step(step);
      await world.check(step);
      stepMs.push(Date.now() - t0);
      config.log?.(`  [${i + 1}/${steps.length}] ${describeStep(step)} — ${Date.now() - t0} ms${world.lastNote ? ` (${world.lastNote})` : ''}`);
      world.lastNote = '';
    }
    return { stepsRun: steps.length, ms: Date.now() - started, stepMs, notes: world.notes, counts: world.counts };
  } catch (err) {
    if (!(err instanceof ViolationError)) throw err;
    const step = steps[i];
    return {
      violation: { step: i, stepText: step ? describeStep(step) : '(setup)', kind: err.kind, message: err.message },
      stepsRun: i + 1,
      ms: Date.now() - started,
      stepMs,
      notes: world.notes,
      counts: world.counts,
    };
  } finally {
    await world.teardown();
  }
}

class World {
  readonly notes: string[] = [];
  readonly counts: Record<string, number> = {};
  lastNote = '';
  private dir = '';
  private source = '';
  private targets = '';
  private checks = '';
  private A!: RepoSide;
  private B!: RepoSide;
  private seq = 0;
  private contents = new Map<string, Content>();
  /** Restored files that exist, newest last (overwrite targets). */
  private restored: string[] = [];
  private targetSeq = 0;
  private env: NodeJS.ProcessEnv;
  private readonly s3: boolean;

  constructor(private readonly config: RunConfig) {
    this.s3 = config.backend === 's3';
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_EC2_METADATA_DISABLED: 'true', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    delete env.CAIRN_REPO;
    delete env.AWS_PROFILE;
    if (config.s3) {
      env.AWS_ACCESS_KEY_ID = config.s3.credentials.accessKeyId;
      env.AWS_SECRET_ACCESS_KEY = config.s3.credentials.secretAccessKey;
      env.AWS_REGION = 'us-east-1';
    }
    if (config.encrypted) {
      env.CAIRN_PASSWORD = 'torture password';
      env.CAIRN_NEW_PASSWORD = 'torture password';
      // Cheap key slots: the KDF's cost is not what is tested here.
      env.CAIRN_TEST_WEAK_KDF = '1';
    }
    this.env = env;
  }

  private count(what: string): void {
    this.counts[what] = (this.counts[what] ?? 0) + 1;
  }

  private note(text: string): void {
    this.lastNote = this.lastNote ? `${this.lastNote}; ${text}` : text;
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  async setup(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'cairn-torture-'));
    liveDirs.add(this.dir);
    this.env.CAIRN_CONFIG = join(this.dir, 'cairn-config.json');
    this.env.CAIRN_DATA_DIR = join(this.dir, 'data-dir');
    this.source = join(this.dir, 'source.db');
    this.targets = join(this.dir, 'targets');
    this.checks = join(this.dir, 'checks');
    mkdirSync(this.targets);
    mkdirSync(this.checks);
    createSource(this.source, new Rng(1));
    const side = (name: 'A' | 'B'): RepoSide => {
      if (this.config.backend === 'fs') {
        const root = join(this.dir, `repo${name}`);
        return { name, url: root, raw: fsStore(root), model: new Map(), dirty: false, chunkCache: new Map() };
      }
      const s3 = this.config.s3!;
      const prefix = `t${process.pid}-${++runCounter}-${Date.now().toString(36)}-${name}`;
      const url = `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(s3.proxyUrl)}&forcePathStyle=true&region=us-east-1`;
      return { name, url, raw: s3Store(s3.directUrl, s3.bucket, prefix, s3.credentials), model: new Map(), dirty: false, chunkCache: new Map() };
    };
    this.A = side('A');
    this.B = side('B');
    for (const s of [this.A, this.B]) {
      const r = await this.retrying(['repo', 'init', s.url, '--pack-size', '1', ...(this.config.encrypted ? ['--encryption'] : []), '--json']);
      if (r.code !== 0) throw new ViolationError('setup', `repo init failed: ${describeResult(r)}`);
    }
  }

  async teardown(): Promise<void> {
    if (this.config.keep) {
      this.config.log?.(`  (kept ${this.dir})`);
      return;
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
    // S3 prefixes die with s3rver's temp folder.
  }

  /** kill: ms after start for SIGKILL; -ms for SIGTERM (cancel). */
  private cairn(args: string[], kill?: number): Promise<ChildResult> {
    const signal = kill !== undefined ? { killAfterMs: Math.abs(kill), killSignal: kill < 0 ? ('SIGTERM' as const) : ('SIGKILL' as const) } : {};
    return runCairn(args, { env: this.env, cwd: PROJECT_ROOT, timeoutMs: this.config.timeoutMs ?? 120_000, ...signal });
  }

  /** For check commands on S3 with faults: a storage error (exit 8) is retried, it is not what is checked. */
  private async retrying(args: string[]): Promise<ChildResult> {
    // Checks run in this process on the filesystem (TORTURE_CHILD_CHECKS=1: as children, like every step).
    // On S3 they run as children too: one long-lived process piling up S3 clients met socket
    // hang-ups from the fault proxy that no real cairn invocation would meet.
    const run = (): Promise<ChildResult> => (process.env.TORTURE_CHILD_CHECKS === '1' || this.s3 ? this.cairn(args) : this.inProcess(args));
    let r = await run();
    for (let attempt = 0; attempt < 3 && this.s3 && r.code === 8; attempt++) {
      this.count('check retried after exit 8');
      r = await run();
    }
    return r;
  }

  private async inProcess(args: string[]): Promise<ChildResult> {
    for (const [k, v] of Object.entries(this.env)) if (process.env[k] !== v) process.env[k] = v;
    return runCairnInProcess(args);
  }

  private hang(r: ChildResult): void {
    if (r.timedOut) throw new ViolationError('hang', `A child hung: ${describeResult(r)}`);
  }

  /** Exit codes a step may end with besides 0; S3 with faults may also fail with a storage error. */
  private allowed(r: ChildResult, codes: number[], what: string): void {
    this.hang(r);
    if (r.code === 0) return;
    // Died of the signal: SIGKILL, or a SIGTERM that came before the CLI installed its handler.
    if (r.killed && r.signal !== null) return;
    // A cancelled (SIGTERM) child must stop cleanly with 130, or with an error it would have had anyway.
    const ok = [...codes, ...(this.s3 ? [8] : []), ...(r.killed ? [130] : [])];
    if (r.code === null || !ok.includes(r.code)) {
      throw new ViolationError(`exit:${what}:${r.code}`, `${what} ended with exit ${r.code} (allowed: 0${ok.map((c) => `, ${c}`).join('')}): ${describeResult(r)}`);
    }
    this.count(`${what} exit ${r.code}`);
  }

  private remember(c: { hash: string; content: Content }): string {
    this.contents.set(c.hash, c.content);
    return c.hash;
  }

  private listed(side: RepoSide, states: State[] = ['complete']): ModelBackup[] {
    return [...side.model.values()].filter((b) => states.includes(b.state)).sort((a, b) => a.seq - b.seq);
  }

  private pick(side: RepoSide, pick: number, states: State[] = ['complete']): ModelBackup | undefined {
    const list = this.listed(side, states);
    return list.length === 0 ? undefined : list[Math.min(list.length - 1, Math.floor(pick * list.length))];
  }

  private newId(): string {
    return `b${++this.seq}`;
  }

  /**
   * Exit 0: complete. SIGKILL: there or not. A failure or cancellation (exit ≠ 0) leaves nothing
   * visible on the filesystem; on S3 a lost answer may hide a manifest that was written.
   */
  private addBackup(side: RepoSide, id: string, r: ChildResult | undefined, candidates: string[], seq = this.seq): void {
    const complete = r !== undefined && r.code === 0;
    if (r && r.code !== 0 && r.code !== null && !this.s3) return;
    side.model.set(id, { id, state: complete ? 'complete' : 'uncertain', candidates, seq });
    if (complete && r) {
      const m = JSON.parse(r.stdout) as { id: string };
      if (m.id !== id) throw new ViolationError('manifest-id', `backup create --id ${id} printed a manifest for "${m.id}"`);
    }
    if (r?.killed) this.count(r.signal !== null ? 'killed backup' : 'cancelled backup');
  }

  /**
   * Prune without its grace period (`--grace 0`) unless asked: with the default hour, every pack of
   * a torture run is young and prune would delete nothing. Locks alone must then keep running
   * writers safe.
   */
  private pruneArgs(grace?: boolean): string[] {
    return ['prune', '--repo', this.A.url, '--json', ...(this.config.pruneGrace || grace ? [] : ['--grace', '0'])];
  }

  private backupArgs(id: string, expires?: boolean): string[] {
    return ['backup', 'create', '--source', `sqlite://${this.source}`, '--repo', this.A.url, '--id', id, '--json', ...(expires ? ['--expires', '30d'] : [])];
  }

  // ---------------------------------------------------------------- steps

  async step(step: Step): Promise<void> {
    this.count(step.op === 'pair' ? step.kind : step.op);
    switch (step.op) {
      case 'mutate':
        mutateSource(this.source, step.seed);
        return;
      case 'backup': {
        const id = this.newId();
        const before = this.remember(capture(this.source));
        const r = await this.cairn(this.backupArgs(id, step.expires), step.kill);
        this.A.dirty = true;
        this.allowed(r, [], 'backup create');
        this.addBackup(this.A, id, r, [before]);
        return;
      }
      case 'delete': {
        const b = this.pick(this.A, step.pick, ['complete', 'damaged']);
        if (!b) return this.note('delete: no backup');
        const r = await this.cairn(['backup', 'delete', b.id, '--repo', this.A.url, '--json'], step.kill);
        this.A.dirty = true;
        this.allowed(r, [], 'backup delete');
        if (r.code === 0) this.A.model.delete(b.id);
        else b.state = b.state === 'damaged' ? 'damaged' : 'maybeDeleted';
        return;
      }
      case 'expire':
        return this.expire(step.pick, step.kill);
      case 'keepLast': {
        const list = this.listed(this.A, ['complete']);
        for (const b of list.slice(0, Math.max(0, list.length - step.n))) {
          const r = await this.cairn(['backup', 'delete', b.id, '--repo', this.A.url, '--json']);
          this.allowed(r, [], 'backup delete');
          if (r.code === 0) this.A.model.delete(b.id);
          else b.state = 'maybeDeleted';
        }
        this.A.dirty = true;
        return;
      }
      case 'prune': {
        const r = await this.cairn(this.pruneArgs(step.grace), step.kill);
        this.A.dirty = true;
        this.allowed(r, [], 'prune');
        if (r.killed) this.count('killed prune');
        return;
      }
      case 'copy': {
        const b = this.pick(this.A, step.pick);
        if (!b) return this.note('copy: no backup');
        const r = await this.cairn(['copy', b.id, '--from', this.A.url, '--to', this.B.url, '--json'], step.kill);
        this.copied(b, r);
        return;
      }
      case 'restore':
        return this.restoreStep(step.pick, step.mode, step.kill);
      case 'repair': {
        if (!this.config.hasRepair) return this.note('repair skipped: the built CLI has no `cairn repair`');
        const r = await this.cairn(['repair', '--repo', this.A.url, '--json'], step.kill);
        this.A.dirty = true;
        this.allowed(r, [], 'repair');
        return;
      }
      case 'pair':
        return this.pair(step);
      case 'damage':
        return this.damage(step);
    }
  }

  /** `locked`: exit 5 allowed (a prune ran at the same time). */
  private copied(b: ModelBackup, r: ChildResult, locked = false): void {
    this.B.dirty = true;
    const known = this.B.model.get(b.id);
    const candidates = b.pinned ? [b.pinned] : b.candidates;
    // Exit 4 (the id is taken) also when a kill was sent: the process may have found the id
    // taken and ended before the signal landed ("signalled, exit 4", seed 8901 step 26).
    if (r.code === 4) {
      if (!known) throw new ViolationError('copy-conflict', `copy of ${b.id} said the id exists in the target, which has never had it: ${describeResult(r)}`);
      return;
    }
    this.allowed(r, locked ? [5] : [], locked ? 'copy ∥ prune' : 'copy');
    if (r.killed) this.count('killed copy');
    if (known) {
      // Already there (or maybe there): a second copy must have been refused (exit 4).
      if (known.state === 'complete' && r.code === 0) throw new ViolationError('copy-duplicate', `copy of ${b.id} succeeded although the target already holds it`);
      if (r.code === 0) known.state = 'complete';
      return;
    }
    this.addBackup(this.B, b.id, r.code === 0 ? { ...r, stdout: JSON.stringify({ id: b.id }) } : r, candidates, b.seq);
  }

  private async expire(pick: number, kill: number | undefined): Promise<void> {
    const b = this.pick(this.A, pick);
    if (!b) return this.note('expire: no backup');
    const set = await this.cairn(['backup', 'set-expiry', b.id, '2000-01-01', '--repo', this.A.url, '--json']);
    this.A.dirty = true;
    this.allowed(set, [], 'backup set-expiry');
    b.expired = set.code === 0 ? true : 'maybe';
    const r = await this.cairn(['backup', 'expire', '--repo', this.A.url, '--json'], kill);
    this.allowed(r, [], 'backup expire');
    const due = [...this.A.model.values()].filter((m) => m.expired);
    if (r.code === 0) {
      const expired = (JSON.parse(r.stdout) as { expired: string[] }).expired;
      for (const id of expired) {
        const m = this.A.model.get(id);
        if (!m || !m.expired) throw new ViolationError('expire-wrong', `backup expire deleted ${id}, which had not expired (expired per the model: ${due.map((d) => d.id).join(', ') || 'none'})`);
        this.A.model.delete(id);
      }
      for (const m of due) {
        if (m.expired === true && m.state === 'complete' && this.A.model.has(m.id)) throw new ViolationError('expire-missed', `backup expire kept ${m.id}, whose expiry is 2000-01-01: ${r.stdout}`);
      }
    } else {
      for (const m of due) if (m.state !== 'damaged') m.state = 'maybeDeleted';
    }
  }

  private async restoreStep(pick: number, mode: 'new' | 'overwrite', kill: number | undefined): Promise<void> {
    const b = this.pick(this.A, pick);
    if (!b) return this.note('restore: no backup');
    const existing = this.restored.filter((p) => existsSync(p));
    const overwrite = mode === 'overwrite' && existing.length > 0;
    // A new-file restore reuses the name of one that was killed before it created its file, so
    // that the staging leftovers of the killed run are the next run's to clean.
    const lastNew = join(this.targets, `t${this.targetSeq}.db`);
    const target = overwrite ? existing[existing.length - 1]! : this.targetSeq > 0 && !existsSync(lastNew) ? lastNew : join(this.targets, `t${++this.targetSeq}.db`);
    const before = overwrite ? capture(target) : undefined;
    const r = await this.cairn(['restore', b.id, '--repo', this.A.url, '--to', `sqlite://${target}`, '--json', ...(overwrite ? ['--on-conflict', 'overwrite'] : [])], kill);
    if (r.killed) this.count(`killed restore (${overwrite ? 'overwrite' : 'new'})`);
    this.allowed(r, overwrite ? [4] : [], `restore${overwrite ? ' --on-conflict overwrite' : ''}`);
    this.judgeRestore(b, target, before, r, overwrite ? 'restore over an existing file' : 'restore into a new file');
    if (r.code === 0) noLeftovers(target);
    if (existsSync(target) && !this.restored.includes(target)) this.restored.push(target);
  }

  /**
   * A restore ends complete (exit 0: the target holds the backup, plus, for an overwrite, the
   * tables the backup does not have, unchanged) or untouched (failed: exactly as before, or absent
   * for a new file); a killed one may be either.
   */
  private judgeRestore(b: ModelBackup, target: string, before: { hash: string; content: Content } | undefined, r: ChildResult, what: string): void {
    const after = existsSync(target) ? capture(target) : undefined;
    const untouched = before ? after?.hash === before.hash : after === undefined;
    const candidates = b.pinned ? [b.pinned] : b.candidates;
    const complete = (): string | undefined => {
      if (!after) return undefined;
      for (const h of candidates) {
        const expected = this.contents.get(h)!;
        if (before ? overwriteMatches(before.content, expected, after.content) : after.hash === h) return h;
      }
      return undefined;
    };
    if (r.code === 0) {
      const h = complete();
      if (!h) throw new ViolationError('restore-content', `${what}: ${b.id} restored with exit 0 but the target differs from the backup's content${diffHint(candidates.map((c) => this.contents.get(c)!), after?.content, before?.content)}`);
      b.pinned = h;
    } else if (r.killed && r.signal !== null) {
      if (!untouched && !complete()) throw new ViolationError('restore-half', `${what}: a killed restore of ${b.id} left the target neither untouched nor complete${diffHint(candidates.map((c) => this.contents.get(c)!), after?.content, before?.content)}`);
    } else if (!untouched) {
      throw new ViolationError('restore-failed-touched', `${what}: restore of ${b.id} failed (exit ${r.code}) and changed the target: ${describeResult(r)}`);
    }
  }

  private async pair(step: Extract<Step, { op: 'pair' }>): Promise<void> {
    const kills = [step.killWhich === 0 ? step.kill : undefined, step.killWhich === 1 ? step.kill : undefined];
    const second = async <T>(f: () => Promise<T>): Promise<T> => {
      await sleep(step.delayMs);
      return f();
    };
    this.A.dirty = true;
    switch (step.kind) {
      case 'backup+prune': {
        const id = this.newId();
        const before = this.remember(capture(this.source));
        const [b, p] = await Promise.all([this.cairn(this.backupArgs(id), kills[0]), second(() => this.cairn(this.pruneArgs(), kills[1]))]);
        this.allowed(b, [5], 'backup create ∥ prune');
        this.allowed(p, [5], 'prune ∥ backup');
        this.addBackup(this.A, id, b, [before]);
        return;
      }
      case 'backup+backup': {
        const id1 = this.newId();
        const id2 = this.newId();
        const before = this.remember(capture(this.source));
        const [b1, b2] = await Promise.all([this.cairn(this.backupArgs(id1), kills[0]), second(() => this.cairn(this.backupArgs(id2), kills[1]))]);
        this.allowed(b1, [], 'backup create ∥ backup create');
        this.allowed(b2, [], 'backup create ∥ backup create');
        this.addBackup(this.A, id1, b1, [before], this.seq - 1);
        this.addBackup(this.A, id2, b2, [before]);
        return;
      }
      case 'prune+prune': {
        const [p1, p2] = await Promise.all([this.cairn(this.pruneArgs(), kills[0]), second(() => this.cairn(this.pruneArgs(), kills[1]))]);
        this.allowed(p1, [5], 'prune ∥ prune');
        this.allowed(p2, [5], 'prune ∥ prune');
        return;
      }
      case 'backup+restoreSource': {
        const src = this.pick(this.A, step.pick);
        if (!src) return this.note('backup ∥ restore: no backup to restore');
        const id = this.newId();
        const s0 = capture(this.source);
        this.remember(s0);
        const [b, r] = await Promise.all([
          this.cairn(this.backupArgs(id), kills[0]),
          second(() => this.cairn(['restore', src.id, '--repo', this.A.url, '--to', `sqlite://${this.source}`, '--on-conflict', 'overwrite', '--json'], kills[1])),
        ]);
        this.allowed(b, [], 'backup create ∥ restore into its source');
        this.allowed(r, [4, 5, 7], 'restore into the source ∥ backup create');
        this.judgeRestore(src, this.source, s0, r, 'restore into a database being backed up');
        if (r.code === 0) noLeftovers(this.source);
        const s1 = this.remember(capture(this.source));
        this.addBackup(this.A, id, b, s1 === s0.hash ? [s0.hash] : [s0.hash, s1]);
        return;
      }
      case 'prune+copy': {
        const src = this.pick(this.A, step.pick);
        if (!src) return this.note('prune ∥ copy: no backup');
        const [p, c] = await Promise.all([
          this.cairn(this.pruneArgs(), kills[0]),
          second(() => this.cairn(['copy', src.id, '--from', this.A.url, '--to', this.B.url, '--json'], kills[1])),
        ]);
        this.allowed(p, [5], 'prune ∥ copy');
        this.copied(src, c, true);
        return;
      }
    }
  }

  // ---------------------------------------------------------------- damage

  private async chunksOf(side: RepoSide, id: string): Promise<Record<string, string[]>> {
    const cached = side.chunkCache.get(id);
    if (cached) return cached;
    const r = await this.retrying(['backup', 'show', id, '--repo', side.url, '--json']);
    if (r.code !== 0) throw new ViolationError('show', `backup show ${id} failed before damage: ${describeResult(r)}`);
    const m = JSON.parse(r.stdout) as { collections: { name: string; chunks: string[] }[] };
    const out: Record<string, string[]> = {};
    for (const c of m.collections) out[c.name] = c.chunks;
    side.chunkCache.set(id, out);
    return out;
  }

  private async damage(step: Extract<Step, { op: 'damage' }>): Promise<void> {
    if (!this.config.hasRepair) return this.note('damage skipped: the built CLI has no `cairn repair` yet');
    const rng = new Rng(step.seed);
    const raw = this.A.raw;
    const prefix = { pack: 'data/', index: 'index/', manifest: 'backups/', lock: 'locks/' }[step.target];
    const keys = (await raw.list(prefix)).filter((k) => !basename(k).startsWith('.'));
    let how = step.how;
    if (keys.length === 0 && how !== 'add') how = 'add';
    // Who uses what: collections per chunk, and every present pack's blobs.
    const users = new Map<string, Set<string>>();
    for (const b of this.listed(this.A, ['complete', 'damaged'])) {
      for (const [coll, chunks] of Object.entries(await this.chunksOf(this.A, b.id))) {
        for (const c of chunks) {
          let u = users.get(c);
          if (!u) users.set(c, (u = new Set()));
          u.add(`${b.id}: ${coll}`);
        }
      }
    }
    let key: string;
    let lower = new Set<string>();
    let upper = new Set<string>();
    let verifyMust: 'fail' | 'pass' | 'either' = 'either';
    const damagedBackups = new Set<string>();
    if (how === 'add') {
      const hex = rng.bytes(32).toString('hex');
      key = { pack: `data/${hex.slice(0, 2)}/${hex}`, index: `index/${hex}`, manifest: `backups/zz-junk-${step.seed}`, lock: `locks/${hex}` }[step.target];
      await raw.put(key, rng.bytes(rng.int(1, 300)));
      if (step.target === 'manifest') {
        verifyMust = 'either';
        this.A.model.set(`zz-junk-${step.seed}`, { id: `zz-junk-${step.seed}`, state: 'damaged', candidates: [], seq: this.seq });
      } else if (step.target === 'pack') verifyMust = 'pass';
    } else {
      key = rng.pick(keys);
      const bytes = await raw.get(key);
      let blobs: PackBlob[] = [];
      const allUsers = new Set<string>();
      const onlyHere = new Set<string>();
      if (step.target === 'pack') {
        blobs = packBlobs(bytes);
        const elsewhere = new Set<string>();
        for (const k of (await raw.list('data/')).filter((k) => k !== key && !basename(k).startsWith('.'))) for (const bl of packBlobs(await raw.get(k))) elsewhere.add(bl.id);
        for (const bl of blobs) {
          for (const u of users.get(bl.id) ?? []) {
            allUsers.add(u);
            if (!elsewhere.has(bl.id)) onlyHere.add(u);
          }
        }
      }
      const usersOf = (ids: string[], unique: boolean): Set<string> => {
        const s = new Set<string>();
        for (const bl of blobs) if (ids.includes(bl.id)) for (const u of users.get(bl.id) ?? []) if (!unique || onlyHere.has(u)) s.add(u);
        return s;
      };
      switch (how) {
        case 'flip': {
          const at = rng.int(0, Math.max(0, bytes.length - 1));
          bytes[at] = bytes[at]! ^ (1 << rng.int(0, 7));
          await raw.put(key, bytes);
          if (step.target === 'pack') {
            const hit = blobs.find((bl) => at >= bl.offset && at < bl.offset + bl.length);
            if (hit) {
              // Damage is contained: only the collections using the flipped blob are affected.
              upper = usersOf([hit.id], false);
              lower = usersOf([hit.id], true);
            } else {
              upper = allUsers; // the header: lenient
            }
          }
          break;
        }
        case 'truncate': {
          const len = rng.int(0, Math.max(0, bytes.length - 1));
          await raw.put(key, bytes.subarray(0, len));
          if (step.target === 'pack') {
            upper = allUsers;
            lower = usersOf(blobs.filter((bl) => bl.offset + bl.length > len).map((bl) => bl.id), true);
          }
          break;
        }
        case 'delete':
          await raw.delete(key);
          if (step.target === 'pack') {
            upper = allUsers;
            lower = new Set([...allUsers].filter((u) => onlyHere.has(u)));
          }
          break;
        case 'junk':
          await raw.put(key, Buffer.concat([bytes, rng.bytes(rng.int(1, 100))]));
          if (step.target === 'pack') upper = allUsers;
          break;
      }
      if (step.target === 'pack') verifyMust = lower.size > 0 ? 'fail' : upper.size === 0 ? 'pass' : 'either';
      if (step.target === 'manifest') {
        const id = basename(key);
        const m = this.A.model.get(id);
        if (how === 'delete') {
          // The backup is gone as if deleted: nothing else may suffer.
          this.A.model.delete(id);
        } else {
          verifyMust = 'fail';
          for (const [coll] of Object.entries(m ? await this.chunksOf(this.A, id) : {})) upper.add(`${id}: ${coll}`);
          if (m) m.state = 'damaged';
        }
      }
      if (step.target === 'index') upper = new Set([...users.values()].flatMap((s) => [...s]));
    }
    // What is certainly lost (blobs with no intact copy anywhere): those backups may fail from now
    // on (exit 6, never wrong content). Everything else must come through repair intact.
    const before = new Set(this.listed(this.A, ['damaged']).map((b) => b.id));
    for (const u of lower) damagedBackups.add(u.slice(0, u.indexOf(':')));
    for (const id of damagedBackups) {
      const m = this.A.model.get(id);
      if (m) m.state = 'damaged';
    }
    this.note(`damaged ${key} (${how}); expected affected: ${lower.size}..${upper.size} collections`);
    this.count(`damage ${how} ${step.target}`);

    // verify must name every collection that depends on the damaged object, and only those.
    const v = await this.retrying(['verify', '--repo', this.A.url, '--read-data', '--json']);
    this.hang(v);
    // An unreadable lock blocks (exit 5) like an exclusive one; a flipped byte may leave it readable.
    // Backups damaged by earlier steps (and not healed) keep verify at 6 even when this damage is harmless.
    const stillDamaged = before.size > 0 && verifyMust === 'pass';
    // Damage to a pack where no backup needs it is still damage: verify may report it (exit 6)
    // as long as it names no collection (checked below).
    const harmlessPackDamage = step.target === 'pack' && how !== 'add' && verifyMust === 'pass';
    const allowedCodes = step.target === 'lock' ? (how === 'add' || how === 'junk' ? [5] : how === 'delete' ? [0] : [0, 5]) : verifyMust === 'fail' ? [6] : verifyMust === 'pass' ? (stillDamaged || harmlessPackDamage ? [0, 6] : [0]) : [0, 6];
    if (v.code === null || !allowedCodes.includes(v.code)) {
      throw new ViolationError(`damage-verify-exit:${step.target}:${how}`, `After damaging ${key} (${how}), verify exited ${v.code}, expected ${allowedCodes.join(' or ')}: ${describeResult(v)}`);
    }
    if (v.code === 6 && step.target === 'pack') {
      const reported = reportedAffects(v.stdout);
      if (reported) {
        const missed = [...lower].filter((u) => !reported.has(u));
        // Backups damaged by earlier steps are still reported (until a backup heals them).
        const extra = [...reported].filter((u) => !upper.has(u) && !before.has(u.slice(0, u.indexOf(':'))));
        if (missed.length > 0) throw new ViolationError('damage-missed', `After damaging ${key} (${how}), verify did not name ${missed.join(', ')}: ${describeResult(v)}`);
        if (extra.length > 0) throw new ViolationError('damage-uncontained', `After damaging ${key} (${how}), verify named collections that do not depend on the damaged data: ${extra.join(', ')} (at most: ${[...upper].join(', ') || 'none'}): ${describeResult(v)}`);
      }
    }
    if (step.target === 'lock' && how !== 'delete') {
      // What docs/reliability.md tells the user: remove a damaged lock when no cairn runs
      // (`cairn unlock --remove-all` where it exists).
      if (this.config.hasUnlock) {
        const u = await this.retrying(['unlock', '--repo', this.A.url, '--remove-all', '--json']);
        this.hang(u);
        if (u.code !== 0) throw new ViolationError('unlock-exit', `cairn unlock --remove-all after damaging ${key} exited ${u.code}: ${describeResult(u)}`);
        const left = (await raw.list('locks/')).filter((k) => !basename(k).startsWith('.'));
        if (left.length > 0) throw new ViolationError('unlock-left', `cairn unlock --remove-all left ${left.join(', ')} while no cairn ran`);
      } else {
        await raw.delete(key);
      }
    }
    const rep = await this.retrying(['repair', '--repo', this.A.url, '--json']);
    this.hang(rep);
    if (rep.code !== 0) throw new ViolationError('repair-exit', `cairn repair after damaging ${key} (${how}) exited ${rep.code}: ${describeResult(rep)}`);
    this.A.dirty = true;
    // Repair says which backups lost what: everything certainly lost, nothing that was intact.
    let lost: Set<string> | undefined;
    try {
      const report = JSON.parse(rep.stdout) as { backupsDamaged?: { id: string; collections: { name: string }[] }[] };
      if (Array.isArray(report.backupsDamaged)) lost = new Set(report.backupsDamaged.flatMap((b) => b.collections.map((c) => `${b.id}: ${c.name}`)));
    } catch {
      throw new ViolationError('repair-json', `cairn repair --json printed no JSON report: ${describeResult(rep)}`);
    }
    if (lost) {
      const missed = [...lower].filter((u) => !lost.has(u));
      // An index document or lock holds no data: repair loses nothing for them.
      const mayLose = step.target === 'pack' || step.target === 'manifest' ? upper : new Set<string>();
      const extra = [...lost].filter((u) => !mayLose.has(u) && !before.has(u.slice(0, u.indexOf(':'))));
      if (missed.length > 0) throw new ViolationError('repair-missed', `After damaging ${key} (${how}), repair did not report ${missed.join(', ')} as damaged: ${rep.stdout.slice(0, 1500)}`);
      if (extra.length > 0) throw new ViolationError('repair-overreported', `After damaging ${key} (${how}), repair reported ${extra.join(', ')} as damaged, which did not depend on the damaged data: ${rep.stdout.slice(0, 1500)}`);
      for (const u of lost) {
        const m = this.A.model.get(u.slice(0, u.indexOf(':')));
        if (!m) continue;
        if (m.state === 'complete') m.state = 'damaged';
        (m.lost ??= new Set()).add(u.slice(u.indexOf(':') + 2));
      }
    }
  }

  // ---------------------------------------------------------------- invariants

  async check(step: Step): Promise<void> {
    // Retention by the harness: the checks restore every listed backup, so their number sets the
    // cost of a step; keep the newest few (deleting with the CLI, as a user would).
    for (const [side, keep] of [[this.A, MAX_BACKUPS_A], [this.B, MAX_BACKUPS_B]] as const) {
      const list = this.listed(side, ['complete']);
      for (const b of list.slice(0, Math.max(0, list.length - keep))) {
        const r = await this.cairn(['backup', 'delete', b.id, '--repo', side.url, '--json']);
        this.allowed(r, [], 'backup delete (harness retention)');
        if (r.code === 0) side.model.delete(b.id);
        else b.state = 'maybeDeleted';
        side.dirty = true;
      }
    }
    for (const side of [this.A, this.B]) {
      if (!side.dirty) continue;
      await this.checkSide(side, step);
      side.dirty = false;
    }
    // Forget contents no backup can hold any more.
    const live = new Set<string>();
    for (const side of [this.A, this.B]) for (const b of side.model.values()) for (const h of b.pinned ? [b.pinned] : b.candidates) live.add(h);
    for (const h of this.contents.keys()) if (!live.has(h)) this.contents.delete(h);
  }

  /**
   * Damage is contained: a backup that lost some collections still restores the others
   * (`--exclude` the lost ones), exactly.
   */
  private async restoreIntactPart(side: RepoSide, b: ModelBackup, target: string): Promise<void> {
    const candidates = (b.pinned ? [b.pinned] : b.candidates).map((h) => this.contents.get(h)!).filter(Boolean);
    const lost = [...(b.lost ?? [])];
    const all = candidates[0] ? Object.keys(candidates[0].tables).filter((t) => t !== 'sqlite_sequence') : [];
    const keep = new Set(all.filter((t) => !lost.includes(t)));
    if (lost.length === 0 || keep.size === 0) return;
    rmSync(target, { force: true });
    const r = await this.retrying(['restore', b.id, '--repo', side.url, '--to', `sqlite://${target}`, '--exclude', lost.join(','), '--json']);
    this.hang(r);
    if (r.code !== 0) throw new ViolationError('damage-spread', `backup ${b.id} lost ${lost.join(', ')} (repair said so) but restoring the rest (--exclude ${lost.join(',')}) failed: ${describeResult(r)}`);
    const got = capture(target);
    const tables = new Set(Object.keys(got.content.tables).filter((t) => t !== 'sqlite_sequence'));
    const want = only(got.content, tables);
    if (!candidates.some((c) => only(c, keep) === want && tables.size === keep.size)) {
      throw new ViolationError('damage-spread', `backup ${b.id} lost ${lost.join(', ')}; its other collections restored, but not to their content (got tables ${[...tables].join(', ')}, expected ${[...keep].join(', ')})`);
    }
    this.count('partial restore of a damaged backup');
  }

  private async checkSide(side: RepoSide, step: Step): Promise<void> {
    const where = `repository ${side.name}`;
    const list = await this.retrying(['backup', 'list', '--repo', side.url, '--json']);
    this.hang(list);
    if (list.code !== 0) throw new ViolationError('list-failed', `backup list of ${where} failed: ${describeResult(list)}`);
    const ids = new Set((JSON.parse(list.stdout) as { backups: { id: string }[] }).backups.map((m) => m.id));
    for (const b of [...side.model.values()]) {
      if (ids.has(b.id)) {
        if (b.state === 'uncertain' || b.state === 'maybeDeleted') b.state = 'complete';
      } else if (b.state === 'complete') {
        throw new ViolationError('lost-backup', `${where} lost backup ${b.id}: its create exited 0, nothing deleted it, and backup list no longer shows it (listed: ${[...ids].join(', ') || 'none'})`);
      } else {
        side.model.delete(b.id);
        side.chunkCache.delete(b.id);
      }
    }
    for (const id of ids) {
      if (!side.model.has(id)) throw new ViolationError('unknown-backup', `${where} lists backup ${id}, which the model says never completed or was deleted`);
    }
    const damaged = new Set([...side.model.values()].filter((b) => b.state === 'damaged').map((b) => b.id));

    const v = await this.retrying(['verify', '--repo', side.url, '--read-data', '--json']);
    this.hang(v);
    if (v.code !== 0) {
      const reported = reportedAffects(v.stdout);
      const innocent = reported ? [...reported].filter((u) => !damaged.has(u.slice(0, u.indexOf(':')))) : undefined;
      if (v.code !== 6 || damaged.size === 0 || !innocent || innocent.length > 0) {
        throw new ViolationError('verify-failed', `verify --read-data of ${where} exited ${v.code}${innocent?.length ? ` naming undamaged ${innocent.join(', ')}` : ''}: ${describeResult(v)}`);
      }
    }

    // Every listed backup restores to exactly its content (two at a time: two cores).
    const queue = this.listed(side, ['complete', 'damaged']);
    const one = async (b: ModelBackup): Promise<void> => {
      const target = join(this.checks, `${side.name}-${b.id}-${Date.now()}.db`);
      const r = await this.retrying(['restore', b.id, '--repo', side.url, '--to', `sqlite://${target}`, '--json']);
      this.hang(r);
      try {
        if (b.state === 'damaged' && r.code === 6) return await this.restoreIntactPart(side, b, target);
        if (r.code !== 0) throw new ViolationError('restore-failed', `${where}: backup ${b.id} is listed but does not restore: ${describeResult(r)}`);
        const got = capture(target);
        const candidates = b.pinned ? [b.pinned] : b.candidates;
        if (!candidates.includes(got.hash)) {
          throw new ViolationError(
            b.pinned ? 'restore-changed' : 'restore-content',
            `${where}: backup ${b.id} restores to content that differs from ${b.pinned ? 'what it restored to before' : 'the source at backup time'}${diffHint(candidates.map((c) => this.contents.get(c)!), got.content)}`,
          );
        }
        b.pinned = got.hash;
        this.contents.set(got.hash, got.content);
      } finally {
        rmSync(target, { force: true });
        for (const n of readdirSync(this.checks)) if (n.includes(basename(target))) rmSync(join(this.checks, n), { force: true });
      }
    };
    const workers = [0, 1].map(async () => {
      for (let b = queue.shift(); b; b = queue.shift()) await one(b);
    });
    await Promise.all(workers);
    void step;
  }
}

/** The content restricted to some tables (rows and their CREATE TABLE lines). */
function only(content: Content, tables: Set<string>): string {
  // Sorted: a restore of some tables may create them in another order than the source had.
  const rows = Object.entries(content.tables)
    .filter(([t]) => tables.has(t))
    .sort(([a], [b]) => a.localeCompare(b));
  const schema = content.schema.filter((l) => TABLE_LINE.test(l) && tables.has(TABLE_LINE.exec(l)![1]!));
  return JSON.stringify({ rows, schema });
}

/** After a completed restore into `target`, no staging file of an earlier (killed) restore of it may remain. */
function noLeftovers(target: string): void {
  const leftovers = readdirSync(dirname(target)).filter((n) => n.startsWith(`.${basename(target)}.cairn-restore-`));
  if (leftovers.length > 0) throw new ViolationError('restore-leftover', `After a completed restore into ${target}, staging files of earlier restores remain: ${leftovers.join(', ')}`);
}

/** "backup: collection" pairs from verify --json's problems, or undefined when stdout is not that report. */
function reportedAffects(stdout: string): Set<string> | undefined {
  try {
    const r = JSON.parse(stdout) as { problems?: { affects?: string[] }[] };
    if (!Array.isArray(r.problems)) return undefined;
    return new Set(r.problems.flatMap((p) => p.affects ?? []));
  } catch {
    return undefined;
  }
}

const TABLE_LINE = /^table (\S+): /;

/**
 * An overwrite restore is complete when the backup's tables hold exactly its rows and schema,
 * and every other table of the target is unchanged.
 */
function overwriteMatches(before: Content, backup: Content, after: Content): boolean {
  const eq = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  for (const [t, rows] of Object.entries(backup.tables)) {
    if (t === 'sqlite_sequence') continue;
    if (!eq(after.tables[t], rows)) return false;
  }
  for (const [t, rows] of Object.entries(before.tables)) {
    if (t === 'sqlite_sequence' || t in backup.tables) continue;
    if (!eq(after.tables[t], rows)) return false;
  }
  const names = new Set([...Object.keys(before.tables), ...Object.keys(backup.tables)]);
  if (!eq(Object.keys(after.tables).sort(), [...names].sort())) return false;
  const schema = new Set(after.schema);
  for (const line of backup.schema) if (TABLE_LINE.test(line) && !schema.has(line)) return false;
  return true;
}

/** A short description of how two contents differ (first table that differs). */
function diffHint(expected: Content[], got: Content | undefined, before?: Content): string {
  if (!got) return ' (the target does not exist)';
  const e = expected[0];
  if (!e) return ' (the model has no content for it)';
  const parts: string[] = [];
  const tables = new Set([...Object.keys(e.tables), ...Object.keys(got.tables)]);
  for (const t of tables) {
    const a = e.tables[t];
    const b = got.tables[t];
    if (!a) parts.push(`unexpected table ${t}`);
    else if (!b) parts.push(`table ${t} missing`);
    else if (JSON.stringify(a) !== JSON.stringify(b)) parts.push(`table ${t}: ${b.length} rows, expected ${a.length}${a.length === b.length ? ' (values differ)' : ''}`);
  }
  if (JSON.stringify(e.schema) !== JSON.stringify(got.schema)) parts.push('schema differs');
  if (before) parts.push(`(target before: tables ${Object.keys(before.tables).join(',')})`);
  return parts.length ? ` (${parts.slice(0, 6).join('; ')})` : ' (same tables, different digest)';
}
