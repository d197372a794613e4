/** /v1/jobs: the job center's records, cancellation, and a job's changes as server-sent events. */
import { streamSSE } from 'hono/streaming';
import { isTerminal } from '../../jobs/job-center.js';
import { jobId, publicJob, type RouteKit } from './kit.js';

export function jobRoutes({ on, center }: RouteKit): void {
  on('listJobs', async (c, { query: { kind, state } }) => c.json({ jobs: (await center.list({ ...(kind ? { kind } : {}), ...(state ? { state } : {}) })).map(publicJob) }));
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
