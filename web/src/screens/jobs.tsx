/**
 * Jobs: the server's job history (GET /v1/jobs, filtered and paged by the server), kept live by
 * GET /v1/events (EventSource: every change of any job); polling every 3 s when the stream
 * cannot be opened. Operators cancel running jobs here.
 */
import { useEffect, useState } from 'preact/hooks';
import { can, checkSession, client, describeError } from '../api.js';
import { errorCodeShown } from '../job-counters.js';
import { duration, rate } from '../format.js';
import { isTerminal, percentOf } from '../job-live.js';
import { go } from '../router.js';
import { useRole } from '../session.js';
import type { JobRecord } from '../types.js';
import { ActionError, Badge, Empty, Equivalents, ErrorNote, Loading, PageHeader, SelectField, TableHead, TableWrap, Time } from '../ui.js';

const KINDS = ['backup', 'restore', 'copy', 'sync', 'verify', 'prune', 'repair', 'export', 'import', 'drill'];
const STATES = ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING', 'SUCCESS', 'FAILED', 'CANCELED'];
const LIMIT = 50;

/**
 * The newer of two records of one job: the cancel answer (CANCELLING) can arrive after the
 * stream's CANCELED, and must not take the row back.
 */
function newer(a: JobRecord, b: JobRecord): JobRecord {
  if (isTerminal(a.state) !== isTerminal(b.state)) return isTerminal(a.state) ? a : b;
  return Date.parse(b.updatedAt) >= Date.parse(a.updatedAt) ? b : a;
}

/** What a job is about, from its parameters (locations only, never secrets). */
function subject(job: JobRecord): string {
  const p = job.params as Record<string, unknown>;
  const pick = (k: string): string | undefined => (typeof p[k] === 'string' ? (p[k] as string) : undefined);
  switch (job.kind) {
    case 'backup':
      return pick('source') ?? job.key ?? '';
    case 'restore':
      return `${pick('backup') ?? ''} → ${pick('target') ?? ''}`;
    case 'copy':
      return `${pick('backup') ?? ''}: ${pick('from') ?? ''} → ${pick('to') ?? ''}`;
    case 'sync':
      return `${pick('from') ?? ''} → ${pick('to') ?? ''}`;
    default:
      return pick('repository') ?? job.key ?? '';
  }
}

export function JobsScreen({ query }: { query: URLSearchParams }) {
  const role = useRole();
  const kind = query.get('kind') ?? '';
  const state = query.get('state') ?? '';
  const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
  const [jobs, setJobs] = useState<JobRecord[] | undefined>();
  const [total, setTotal] = useState<number | undefined>();
  const [error, setError] = useState<unknown>();
  const [live, setLive] = useState<'stream' | 'polling' | 'connecting'>('connecting');
  const [actionError, setActionError] = useState<string | undefined>();

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async (): Promise<void> => {
      try {
        const answer: { jobs: JobRecord[]; total?: number } = await client.jobs.page({ ...(kind ? { kind } : {}), ...(state ? { state } : {}), limit: String(LIMIT), offset: String(offset) } as never);
        if (stopped) return;
        // A server without paging answers every job: page here.
        const paged = answer.total === undefined ? answer.jobs.slice(offset, offset + LIMIT) : answer.jobs;
        setJobs(paged);
        setTotal(answer.total ?? answer.jobs.length);
        setError(undefined);
      } catch (err) {
        if (!stopped) setError(err);
      }
    };
    void load();
    const matches = (j: JobRecord): boolean => (!kind || j.kind === kind) && (!state || j.state === state);
    const events = new EventSource('/v1/events');
    events.onopen = () => setLive('stream');
    events.addEventListener('job', (e) => {
      const j = JSON.parse((e as MessageEvent<string>).data) as JobRecord;
      setJobs((list) => {
        if (!list) return list;
        const at = list.findIndex((x) => x.id === j.id);
        if (at >= 0) return matches(j) ? list.map((x) => (x.id === j.id ? newer(x, j) : x)) : list.filter((x) => x.id !== j.id);
        if (offset === 0 && matches(j)) {
          setTotal((t) => (t ?? 0) + 1);
          return [j, ...list].slice(0, LIMIT);
        }
        return list;
      });
    });
    events.onerror = () => {
      // The stream ended or could not open: it says no why, and the server ends it when the
      // session ends (revoked, signed out elsewhere): ask, and on 401 go to sign-in.
      if (events.readyState !== EventSource.CLOSED) setLive('connecting');
      void checkSession().then((live) => {
        if (!live) {
          stopped = true;
          events.close();
        }
      });
      if (events.readyState === EventSource.CLOSED) {
        // No live stream on this server (or it went away): poll instead.
        setLive('polling');
        const poll = (): void => {
          timer = setTimeout(() => {
            if (stopped) return;
            void load().then(poll);
          }, 3000);
        };
        poll();
      }
    };
    return () => {
      stopped = true;
      events.close();
      if (timer) clearTimeout(timer);
    };
  }, [kind, state, offset]);

  const set = (changes: Record<string, string | number | undefined>): void => {
    go('jobs', { kind, state, offset: offset || undefined, ...changes });
  };

  return (
    <>
      <PageHeader title="Jobs" subtitle={<span>Backups, restores, copies and maintenance run by this server. <LiveMark live={live} /></span>} />
      <form class="card filters" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
        <SelectField id="j-kind" label="Kind" value={kind} blank="Any kind" values={KINDS} onChange={(v) => set({ kind: v || undefined, offset: undefined })} />
        <SelectField id="j-state" label="State" value={state} blank="Any state" values={STATES} onChange={(v) => set({ state: v || undefined, offset: undefined })} />
      </form>
      <ErrorNote error={error} title="Could not list the jobs" />
      <ActionError message={actionError} />
      <div class="card card-flush">
        {!jobs && !error ? <Loading /> : null}
        {jobs && jobs.length === 0 ? <Empty>No jobs{kind || state ? ' match these filters' : ' yet'}.</Empty> : null}
        {jobs && jobs.length > 0 ? (
          <TableWrap caption="Jobs" stack>
            <TableHead columns={['Job', 'State', 'Progress', ['ETA / took', 'num'], 'Started', 'Error']} />
            <tbody>
              {jobs.map((j) => {
                const pct = percentOf(j);
                const ended = isTerminal(j.state);
                return (
                  <tr key={j.id} data-testid={`job-row-${j.id}`}>
                    <th scope="row">
                      <div class="nowrap">
                        <Badge value={j.kind} /> <span class="mono small">{j.id}</span>
                      </div>
                      <div class="small muted mono wrap job-subject">{subject(j)}</div>
                    </th>
                    <td data-label="State">
                      <Badge value={j.state} testid={`job-state-${j.id}`} />
                      {!ended && j.progress.stalledSince ? (
                        <div class="small text-warn" data-testid={`job-stuck-${j.id}`}>
                          <span aria-hidden="true">⚠ </span>stuck since <Time iso={j.progress.stalledSince} rel />
                        </div>
                      ) : null}
                      {can(role, 'operator') && !ended ? (
                        <div class="mt-small">
                          <button
                            type="button"
                            class="btn btn-small btn-danger-outline"
                            data-testid={`job-cancel-${j.id}`}
                            aria-label={`Cancel job ${j.id}`}
                            disabled={j.state === 'FINALIZING' || j.state === 'CANCELLING'}
                            onClick={() =>
                              client.jobs.cancel(j.id).then(
                                (updated) => {
                                  setActionError(undefined);
                                  setJobs((list) => list?.map((x) => (x.id === updated.id ? newer(x, updated) : x)));
                                },
                                (err: unknown) => setActionError(describeError(err)),
                              )
                            }
                          >
                            Cancel
                          </button>
                        </div>
                      ) : null}
                    </td>
                    <td data-label="Progress">
                      <div class="mini-progress">
                        <progress max={100} value={pct ?? undefined} aria-label={`${j.id} progress`} />
                        <span class="small muted nowrap">{pct !== undefined ? `${pct.toFixed(0)} %` : ended ? '' : '…'}</span>
                      </div>
                      {!ended && j.progress.throughput ? <div class="small muted">{rate(j.progress.throughput)}</div> : null}
                    </td>
                    <td data-label="ETA / took" class="num">
                      {ended
                        ? duration(Date.parse(j.finishedAt ?? j.updatedAt) - Date.parse(j.createdAt))
                        : j.progress.etaSeconds !== undefined
                          ? duration(j.progress.etaSeconds * 1000)
                          : '—'}
                    </td>
                    <td data-label="Started">
                      <Time iso={j.createdAt} />
                    </td>
                    <td data-label="Error" class="cell-error">
                      {j.error ? (
                        <span class={`small ${j.state === 'CANCELED' ? 'muted' : 'text-bad'}`}>
                          {errorCodeShown(j) ? <strong>{errorCodeShown(j)}: </strong> : null}
                          {j.error.message}
                        </span>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </TableWrap>
        ) : null}
        {jobs && total !== undefined && total > LIMIT ? (
          <nav class="pager" aria-label="Pages">
            <span>
              {offset + 1}–{Math.min(total, offset + LIMIT)} of {total}
            </span>
            <button type="button" class="btn btn-small" disabled={offset === 0} onClick={() => set({ offset: Math.max(0, offset - LIMIT) || undefined })}>
              Previous
            </button>
            <button type="button" class="btn btn-small" disabled={offset + LIMIT >= total} onClick={() => set({ offset: offset + LIMIT })}>
              Next
            </button>
          </nav>
        ) : null}
      </div>
      {can(role, 'operator') && jobs?.some((j) => !isTerminal(j.state)) ? (
        <Equivalents action="job.cancel" params={{ id: jobs.find((j) => !isTerminal(j.state))!.id }} />
      ) : null}
    </>
  );
}

function LiveMark({ live }: { live: 'stream' | 'polling' | 'connecting' }) {
  return (
    <span class={`live live-${live}`}>
      <i aria-hidden="true" />
      {live === 'stream' ? 'Live' : live === 'polling' ? 'Refreshing every 3 s' : 'Connecting…'}
    </span>
  );
}
