import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
