import { serve } from '@hono/node-server';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SqliteJobCatalog } from '../catalog/sqlite.js';
import { SqliteTokenStore } from '../catalog/tokens.js';
import { SqliteRegistry } from '../catalog/registry.js';
import { resolveRepository } from '../config/registry.js';
import { UsageError } from '../core/errors.js';
import { JobCenter } from '../jobs/job-center.js';
import { createApp } from './app.js';

/** Where the server keeps its catalog: $CAIRN_DATA_DIR, else $XDG_DATA_HOME/cairn, else ~/.local/share/cairn. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_DATA_DIR) return path.resolve(env.CAIRN_DATA_DIR);
  const base = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'cairn');
}

export const catalogFile = (dataDir: string): string => path.join(dataDir, 'catalog.db');

export interface ServerOptions {
  dataDir: string;
  /** Default 127.0.0.1: the API is reachable from elsewhere only when asked. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  /** Jobs a previous process left running, now marked FAILED. */
  interrupted: number;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`Invalid port ${port}: give 0–65535.`);
  const catalog = new SqliteJobCatalog(catalogFile(options.dataDir));
  const tokens = new SqliteTokenStore(catalogFile(options.dataDir));
  const registry = new SqliteRegistry(catalogFile(options.dataDir));
  const center = new JobCenter(catalog);
  const interrupted = center.recoverInterrupted();
  const app = createApp({ center, tokens, registry, resolveRepository });
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port }, () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new UsageError(`Port ${port} on ${host} is in use: choose another with --listen.`) : err),
    );
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  options.log?.(`cairn server listening on ${url} (data in ${options.dataDir})${interrupted ? `; ${interrupted} interrupted job(s) marked FAILED` : ''}`);
  return {
    url,
    interrupted,
    async close() {
      for (const id of center.activeIds()) {
        try {
          center.cancel(id);
        } catch {
          /* finalizing: let it end */
        }
      }
      await Promise.allSettled(center.activeIds().map((id) => center.wait(id)));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Event streams stay open until their job ends: do not wait for them.
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      catalog.close();
      tokens.close();
      registry.close();
    },
  };
}
