import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

export interface LocalServer {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  stop(): Promise<void>;
}

/** s3rver's default credentials. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
/** azurite's well-known development account. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

function binOf(pkg: string, bin: string): string {
  const manifest = require(`${pkg}/package.json`) as { bin: Record<string, string> | string };
  const rel = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin[bin];
  if (!rel) throw new Error(`${pkg} has no "${bin}" executable`);
  return join(require.resolve(`${pkg}/package.json`), '..', rel);
}

/** Spawns `node <script> …args`, waits for `ready` to match its output, returns the captured port. */
async function startNodeServer(script: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv, cwd: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [script, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not start in 30 s:\n${output}`));
    }, 30_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = ready.exec(output);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before it was ready:\n${output}`));
    });
  });
  // Keep draining its output so a chatty server never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  return { child, port };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * s3rver 3.7.1 on a free loopback port, with `buckets` created, data in a temp folder. It runs as a
 * child process because its ListObjectsV2 pagination needs --openssl-legacy-provider on Node 20
 * (see docs/storage.md).
 */
export async function startS3rver(buckets: string[]): Promise<LocalServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-s3rver-'));
  const args = ['-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent'];
  for (const b of buckets) args.push('--configure-bucket', b);
  const nodeOptions = [process.env.NODE_OPTIONS, '--openssl-legacy-provider'].filter(Boolean).join(' ');
  const { child, port } = await startNodeServer(binOf('s3rver', 's3rver'), args, /S3rver listening on [\d.]+:(\d+)/, { NODE_OPTIONS: nodeOptions }, dir).catch(
    async (err: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw err;
    },
  );
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** azurite's blob service, data in a temp folder, on a free loopback port; `url` includes the account path. */
export async function startAzurite(): Promise<LocalServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-azurite-'));
  const args = [
    '--blobHost', '127.0.0.1', '--blobPort', '0', '--location', dir,
    '--skipApiVersionCheck', '--disableTelemetry', '--silent',
  ];
  const { child, port } = await startNodeServer(binOf('azurite', 'azurite-blob'), args, /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/, {}, dir).catch(
    async (err: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw err;
    },
  );
  return {
    url: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The tempauth user of the Swift helper: its S3 access key is "account:user", its secret the key. */
export const SWIFT_CREDENTIALS = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
const SWIFT_DIR = fileURLToPath(new URL('./swift/', import.meta.url));

/** Why Swift cannot run here, or undefined when it can (Debian's python3-swift installed). */
export function swiftUnavailable(): string | undefined {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import swift.common.middleware.s3api'], { encoding: 'utf8' });
  if (r.status === 0) return undefined;
  return 'OpenStack Swift is not installed (Debian package python3-swift; scripts/start-services.sh installs it)';
}

/**
 * A single-node OpenStack Swift (Debian's python3-swift) with its S3 API on loopback, data in a
 * temp folder, `buckets` created: it behaves like AWS S3 in places s3rver does not (multipart
 * ETags, pagination, If-None-Match answered 501). Ports: a free range of 5 found by trying.
 */
export async function startSwift(buckets: string[]): Promise<LocalServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-swift-'));
  const stop = (): void => void spawnSync('bash', [join(SWIFT_DIR, 'stop-swift.sh'), dir, '--purge']);
  for (let attempt = 0; attempt < 8; attempt++) {
    // Below Linux's ephemeral range (32768–60999), where the other test servers' ports come from.
    const port = 20000 + Math.floor(Math.random() * 12000);
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn('bash', [join(SWIFT_DIR, 'start-swift.sh'), dir, String(port)], {
        env: { ...process.env, SWIFT_BUCKETS: buckets.join(' '), SWIFT_WATCH_PID: String(process.pid), SWIFT_SMOKE: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => resolve({ code, out, err }));
    });
    // A port of the range is taken (found before starting, or lost to a race while binding).
    if (r.code === 3 || (r.code === 5 && /Could not bind/.test(r.err))) {
      stop();
      continue;
    }
    if (r.code !== 0) {
      stop();
      throw new Error(`Swift did not start (exit ${r.code}):\n${r.err.slice(-4000)}`);
    }
    const m = /endpoint=(\S+)/.exec(r.out);
    if (!m?.[1]) {
      stop();
      throw new Error(`Swift started but printed no endpoint: ${r.out}`);
    }
    return {
      url: m[1],
      async stop() {
        stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  stop();
  throw new Error('Swift: no free port range found in 8 tries');
}
