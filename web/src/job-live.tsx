/**
 * Live jobs: one job's record from GET /v1/jobs/{id}/events (EventSource: the session cookie goes
 * along, GET needs no CSRF token), falling back to polling GET /v1/jobs/{id} when the stream
 * cannot be opened; and a progress panel for it with a cancel button.
 */
import { useEffect, useState } from 'preact/hooks';
import { can, client, describeError } from './api.js';
import { duration, bytes, count, counted, rate } from './format.js';
import { countersOf, errorCodeShown } from './job-counters.js';
import { useRole } from './session.js';
import type { JobRecord } from './types.js';
import { Badge, Equivalents, Time } from './ui.js';

const TERMINAL = new Set(['SUCCESS', 'FAILED', 'CANCELED']);
export const isTerminal = (state: string): boolean => TERMINAL.has(state);

/** The job's newest record, updated live until it ends; undefined until the first one. */
export function useJob(id: string | undefined): { job: JobRecord | undefined; error: string | undefined } {
  const [job, setJob] = useState<JobRecord | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    setJob(undefined);
    setError(undefined);
    if (!id) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async (): Promise<void> => {
      if (stopped) return;
      try {
        const j = await client.jobs.get(id);
        if (stopped) return;
        setJob(j);
        if (!isTerminal(j.state)) timer = setTimeout(() => void poll(), 1000);
      } catch (err) {
        if (!stopped) setError(describeError(err));
      }
    };
    const source = new EventSource(`/v1/jobs/${encodeURIComponent(id)}/events`);
    source.addEventListener('job', (e) => {
      const j = JSON.parse((e as MessageEvent<string>).data) as JobRecord;
      setJob(j);
      if (isTerminal(j.state)) source.close();
    });
    source.onerror = () => {
      // The stream ended (the job ended) or never opened: one look settles which.
      source.close();
      if (!stopped) void poll();
    };
    return () => {
      stopped = true;
      source.close();
      if (timer) clearTimeout(timer);
    };
  }, [id]);
  return { job, error };
}

/** Percent done of a job, when known. */
export function percentOf(job: JobRecord): number | undefined {
  if (job.state === 'SUCCESS') return 100;
  const p = job.progress;
  if (p.percent !== undefined) return p.percent;
  if (p.bytesTotal) return Math.min(100, (p.bytes / p.bytesTotal) * 100);
  return undefined;
}

export function ProgressBar({ job, label }: { job: JobRecord; label: string }) {
  const pct = percentOf(job);
  return (
    <div class="progress">
      <progress max={100} value={pct ?? undefined} aria-label={label} />
      <span class="progress-text">{pct !== undefined ? `${job.progress.estimated && job.state !== 'SUCCESS' ? '≈ ' : ''}${pct.toFixed(0)} %` : isTerminal(job.state) ? '' : 'working…'}</span>
    </div>
  );
}

/** A job's state, progress, speed, ETA, error and result, with a cancel button while it runs. */
export function JobPanel({ jobId, title, testid, onEnd, onDismiss }: { jobId: string; title: string; testid?: string; onEnd?: (job: JobRecord) => void; onDismiss?: () => void }) {
  const { job, error } = useJob(jobId);
  const role = useRole();
  const [cancelError, setCancelError] = useState<string | undefined>();
  const ended = job ? isTerminal(job.state) : false;
  const counters = countersOf(job?.kind ?? '');
  // onEnd once, when the job ends.
  useEffect(() => {
    if (job && ended) onEnd?.(job);
  }, [ended, job?.id]);
  return (
    <section class="card job-panel" aria-labelledby={`jp-${jobId}`} data-testid={testid}>
      <div class="job-panel-head">
        <h2 id={`jp-${jobId}`} class="h3">
          {title}
        </h2>
        <div class="button-row">
          {job ? <Badge value={job.state} testid={`job-state-${job.id}`} /> : null}
          {ended && onDismiss ? (
            <button type="button" class="dialog-close" aria-label={`Dismiss ${title}`} onClick={onDismiss}>
              ×
            </button>
          ) : null}
        </div>
      </div>
      <p class="muted small mono">job {jobId}</p>
      {/* Screen readers hear the state changes, not every progress tick. */}
      <p class="visually-hidden" role="status">
        {job ? `${title}: ${job.state}${errorCodeShown(job) ? `, ${errorCodeShown(job)}` : ''}` : ''}
      </p>
      {error ? (
        <p class="text-bad" role="alert">
          {error}
        </p>
      ) : null}
      {job ? (
        <>
          <ProgressBar job={job} label={`${title} progress`} />
          {!ended && job.progress.stalledSince ? (
            <p class="small text-warn" data-testid={`job-stuck-${job.id}`}>
              <span aria-hidden="true">⚠ </span>stuck since <Time iso={job.progress.stalledSince} rel />: no progress reported since then
            </p>
          ) : null}
          <dl class="facts facts-inline">
            {counters.bytes ? (
              <div>
                <dt>Done</dt>
                <dd>
                  {bytes(job.progress.bytes)}
                  {job.progress.bytesTotal ? ` of ${job.progress.estimated ? '≈ ' : ''}${bytes(job.progress.bytesTotal)}` : ''}
                </dd>
              </div>
            ) : null}
            {counters.rows ? (
              <div>
                <dt>Rows</dt>
                <dd>{count(job.progress.rows)}</dd>
              </div>
            ) : null}
            {counters.items ? (
              <div>
                <dt>{counters.items}</dt>
                <dd>
                  {job.progress.collectionsDone} / {job.progress.collectionsTotal || '—'}
                </dd>
              </div>
            ) : null}
            {counters.bytes ? (
              <div>
                <dt>Speed</dt>
                <dd>{rate(job.progress.throughput)}</dd>
              </div>
            ) : null}
            {!ended && job.progress.etaSeconds !== undefined ? (
              <div>
                <dt>ETA</dt>
                <dd>{duration(job.progress.etaSeconds * 1000)}</dd>
              </div>
            ) : null}
          </dl>
          {job.error ? (
            <div class="note note-error" role="alert">
              {errorCodeShown(job) ? (
                <>
                  <strong>{errorCodeShown(job)}</strong>:{' '}
                </>
              ) : null}
              {job.error.message}
            </div>
          ) : null}
          {job.state === 'SUCCESS' && job.result ? <ResultSummary kind={job.kind} result={job.result} /> : null}
          {!ended && can(role, 'operator') ? (
            <div class="row-actions">
              <button
                type="button"
                class="btn btn-danger-outline"
                disabled={job.state === 'FINALIZING' || job.state === 'CANCELLING'}
                onClick={() => client.jobs.cancel(job.id).then(() => setCancelError(undefined), (e: unknown) => setCancelError(describeError(e)))}
              >
                Cancel
              </button>
              <Equivalents action="job.cancel" params={{ id: job.id }} />
            </div>
          ) : null}
          {cancelError ? (
            <p class="text-bad" role="alert">
              {cancelError}
            </p>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

/** A job's result in one sentence (backup: its id and size; restore: where and how much). */
function ResultSummary({ kind, result }: { kind: string; result: Record<string, unknown> }) {
  const lines: string[] = [];
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  if (kind === 'backup') {
    const totals = result.totals as { rows?: number; logicalBytes?: number; collections?: number } | undefined;
    if (typeof result.backupId === 'string') lines.push(`backup ${result.backupId}`);
    if (totals?.collections !== undefined) lines.push(counted(totals.collections, 'collection'));
    if (totals?.rows !== undefined) lines.push(counted(totals.rows, 'row'));
    if (totals?.logicalBytes !== undefined) lines.push(bytes(totals.logicalBytes));
  } else if (kind === 'restore') {
    if (typeof result.backupId === 'string') lines.push(`${result.backupId} restored${typeof result.target === 'string' ? ` into ${result.target}` : ''}`);
    const rows = num(result.rows);
    if (rows !== undefined) lines.push(counted(rows, 'row'));
    if (num(result.bytes) !== undefined) lines.push(bytes(num(result.bytes)));
    const renamed = Object.entries((result.renamed as Record<string, string> | undefined) ?? {});
    if (renamed.length) lines.push(`renamed ${renamed.map(([a, b]) => `${a} → ${b}`).join(', ')}`);
  } else if (typeof result.backupId === 'string') {
    lines.push(`backup ${result.backupId}`);
  }
  return (
    <div class="note note-ok">
      Finished{lines.length ? `: ${lines.join(', ')}` : ''}.
    </div>
  );
}
