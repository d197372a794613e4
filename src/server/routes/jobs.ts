/** /v1/jobs: the job center's records, cancellation, and a job's changes as server-sent events. */
import { streamSSE } from 'hono/streaming';
import { isTerminal } from '../../jobs/job-center.js';
import type { JobRecord } from '../../catalog/types.js';
import { sessionCookie } from '../session-auth.js';
import type { Context } from 'hono';
import { jobId, publicJob, type Env, type RouteKit } from './kit.js';

/** How many of the newest jobs a scoped token's listing looks through (its page is cut from those in scope). */
const SCOPED_WINDOW = 10_000;

export function jobRoutes({ on, center, tokens, sessions, eventsPingMs, onAccessChange, scope: scopeOf }: RouteKit): void {
  on('listJobs', async (c, { query: { kind, state, limit = 100, offset = 0 } }) => {
    const filter = { ...(kind ? { kind } : {}), ...(state ? { state } : {}) };
    const scope = scopeOf(c);
    if (scope.limited) {
      // Only the jobs in its scope, paged after filtering (so total counts what it may see).
      const visible = (await center.list({ ...filter, limit: SCOPED_WINDOW })).filter((j) => scope.job(j));
      return c.json({ jobs: visible.slice(offset, offset + limit).map(publicJob), total: visible.length, limit, offset });
    }
    const [jobs, total] = await Promise.all([center.list({ ...filter, limit, offset }), center.count(filter)]);
    return c.json({ jobs: jobs.map(publicJob), total, limit, offset });
  });
  // Every job's changes, for the console's jobs screen: open until the client goes away, or
  // until what authenticated it (token, session) no longer does, checked at each ping (an open
  // stream does not keep a session from going idle).
  on('events', (c) => {
    const tokenId = c.get('token').id;
    const cookie = c.get('session') ? sessionCookie(c) : undefined;
    const scope = scopeOf(c);
    const stillValid = (): boolean => tokens.get(tokenId) !== undefined && (cookie === undefined || sessions.lookup(cookie, { touch: false }).state === 'live');
    return streamSSE(c, async (stream) => {
      let writes: Promise<void> = stream.write(': connected\n\n').then(() => undefined);
      const send = (job: JobRecord): void => {
        if (!scope.job(job)) return; // a scoped token's stream tells of the jobs in its scope only
        writes = writes.then(() => stream.writeSSE({ event: 'job', data: JSON.stringify(publicJob(job)) }));
      };
      await new Promise<void>((resolve) => {
        // Every replica's jobs: with a shared catalog, the others' are read from it (about 1 s late).
        const stop = center.watchEverywhere(send);
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
  /** The job a path names, 403 when it is outside the token's scope. */
  const scopedJob = async (c: Context<Env>): Promise<JobRecord> => {
    const job = await center.get(jobId(c.req.param('id') ?? ''));
    scopeOf(c).checkJob(job);
    return job;
  };
  on('getJob', async (c) => c.json({ job: publicJob(await scopedJob(c)) }));
  on('cancelJob', async (c) => c.json({ job: publicJob(await center.cancel((await scopedJob(c)).id)) }, 202));
  on('jobEvents', async (c) => {
    const first = await scopedJob(c);
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
