/** s3rver behind the fault proxy, for `--backend s3` (started once per torture process). */
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { S3RVER_CREDENTIALS, startS3rver } from '../helpers/object-servers.js';
import type { S3Setup } from './world.js';

// The SDK's notice about Node 20 support would interleave with the step log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

export const TORTURE_BUCKET = 'cairn-torture';

export async function startS3Backend(faultRate: number, seed: number): Promise<{ setup: S3Setup; stats: () => string; stop: () => Promise<void> }> {
  const server = await startS3rver([TORTURE_BUCKET]);
  // The proxy's own lifetime limit is a safety net; torture runs can be long.
  const proxy = await startFaultProxy({ target: server.url, faultRate, seed, maxLifetimeMs: 24 * 3600_000 });
  return {
    setup: { directUrl: server.url, proxyUrl: proxy.url, bucket: TORTURE_BUCKET, credentials: S3RVER_CREDENTIALS },
    stats: () => {
      const s = proxy.stats();
      const faults = Object.values(s.faults).reduce((a, b) => a + b, 0);
      return `${s.requests} S3 requests, ${faults} faults (${Object.entries(s.faults).map(([k, v]) => `${k} ${v}`).join(', ')})`;
    },
    async stop() {
      await proxy.close();
      await server.stop();
    },
  };
}
