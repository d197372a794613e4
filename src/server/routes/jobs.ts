/** /v1/jobs: the job center's records, cancellation, and a job's changes as server-sent events. */
import { streamSSE } from 'hono/streaming';
import { isTerminal } from '../../jobs/job-center.js';
import type { JobRecord } from '../../catalog/types.js';
import { sessionCookie } from '../session-auth.js';
import { jobId, publicJob, type RouteKit } from './kit.js';

export function jobRoutes({ on, center, tokens, sessions, eventsPingMs, onAccessChange }: RouteKit): void {
  on('listJobs', async (c, { query: { kind, state, limit = 100, offset = 0 } }) => {
    const filter = { ...(kind ? { kind } : {}), ...(state ? { state } : {}) };
    const [jobs, total] = await Promise.all([center.list({ ...filter, limit, offset }), center.count(filter)]);
    return c.json({ jobs: jobs.map(publicJob), total, limit, offset });
  });
  // Every job's changes, for the console's jobs screen: open until the client goes away, or
  // until what authenticated it (token, session) no longer does, checked at each ping (an open
  // stream does not keep a session from going idle).
  on('events', (c) => {
    const tokenId = c.get('token').id;
    const cookie = c.get('session') ? sessionCookie(c) : undefined;
    const stillValid = (): boolean => tokens.get(tokenId) !== undefined && (cookie === undefined || sessions.lookup(cookie, { touch: false }).state === 'live');
    return streamSSE(c, async (stream) => {
      let writes: Promise<void> = stream.write(': connected\n\n').then(() => undefined);
      const send = (job: JobRecord): void => void (writes = writes.then(() => stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(job)) })));
      await new Promise<void>((resolve) => {
        const stop = center.watchAll(send);
        const ping = setInterval(() => {
          if (!stillValid()) return end();
          writes = writes.then(() => stream.write(': ping\n\n').then(() => undefined));
        }, eventsPingMs);
        ping.unref?.();
        // A revocation in this process ends the stream at once; another process's (the CLI's) at the next ping.
        const unsubscribe = onAccessChange(() => {
          if (!stillValid()) end();
        });
        const end = (): void => {
          clearInterval(ping);
          unsubscribe();
          stop();
          resolve();
        };
        stream.onAbort(end);
      });
      await writes.catch(() => undefined);
    });
  });
  on('getJob', async (c) => c.json({ job: publicJob(await center.get(jobId(c.req.param('id') ?? ''))) }));
  on('cancelJob', async (c) => c.json({ job: publicJob(await center.cancel(jobId(c.req.param('id') ?? ''))) }, 202));
  on('jobEvents', async (c) => {
    const first = await center.get(jobId(c.req.param('id') ?? ''));
    return streamSSE(c, async (stream) => {
      await stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(first)) });
      if (isTerminal(first.state)) return;
      // Writes in order; the last one (the final state) is awaited before the stream closes.
      let writes = Promise.resolve();
      await new Promise<void>((resolve) => {
        const stop = center.watch(first.id, (job) => {
          writes = writes.then(() => stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(job)) }));
          if (isTerminal(job.state)) {
            stop();
            resolve();
          }
        });
        stream.onAbort(() => {
          stop();
          resolve();
        });
        // It may have ended between get() and watch().
        void center.get(first.id).then((now) => {
          if (!isTerminal(now.state)) return;
          stop();
          writes = writes.then(() => stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(now)) }));
          resolve();
        }, resolve);
      });
      await writes;
    });
  });
}
