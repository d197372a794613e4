/**
 * Backups: filters, sorting and paging done by the server (GET /v1/backups with limit/offset);
 * the state lives in the hash (#/backups?source=…&sort=…) so a view can be shared. An operator
 * can start a backup and watch it live.
 */
import { useState } from 'preact/hooks';
import { can, client, describeError } from '../api.js';
import { SORT_CHOICES, SORTABLE, sortOf, type SortKey } from '../backup-sort.js';
import { bytes, counted, duration } from '../format.js';
import { JobPanel } from '../job-live.js';
import { go, href } from '../router.js';
import { useRole } from '../session.js';
import type { BackupPage } from '../types.js';
import { ActionError, Badge, Dialog, DialogActions, Empty, Equivalents, ErrorNote, Field, Loading, PageHeader, SelectField, TableWrap, Time, useAsync } from '../ui.js';

const FILTERS = ['source', 'repository', 'status', 'type', 'schedule', 'since', 'until'] as const;
const LIMITS = [25, 50, 100];
const STATUSES = ['SUCCESS', 'FAILED', 'CANCELED', 'STARTED', 'TRANSFERRING', 'FINALIZING'];

/** The listing's parameters from the hash query (defaults: newest first, 25 a page). */
function paramsOf(query: URLSearchParams) {
  const get = (k: string): string | undefined => query.get(k) || undefined;
  const limit = Number(get('limit') ?? 25);
  return {
    ...Object.fromEntries(FILTERS.map((f) => [f, get(f)])),
    ...sortOf(get('sort'), get('order')),
    limit: LIMITS.includes(limit) ? limit : 25,
    offset: Math.max(0, Number(get('offset') ?? 0) || 0),
  } as Record<(typeof FILTERS)[number], string | undefined> & { sort: SortKey; order: 'asc' | 'desc'; limit: number; offset: number };
}

/** A date input's value as the start (since) or end (until) of that day in the viewer's zone, ISO. */
function dayBound(value: string | undefined, end: boolean): string | undefined {
  if (!value) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return value;
  const d = new Date(`${value}T${end ? '23:59:59.999' : '00:00:00'}`);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

export function BackupsScreen({ query }: { query: URLSearchParams }) {
  const p = paramsOf(query);
  const role = useRole();
  const [newOpen, setNewOpen] = useState(false);
  const [started, setStarted] = useState<{ jobId: string; backupId: string } | undefined>();
  const names = useAsync(async () => {
    const [sources, repositories, schedules] = await Promise.all([client.sources.list(), client.repositories.list(), client.schedules.list()]);
    return { sources, repositories, schedules };
  }, []);
  const registeredSources = names.data?.sources.map((s) => s.name) ?? [];
  const page = useAsync(async () => {
    const filters = Object.fromEntries(FILTERS.map((f) => [f, f === 'since' ? dayBound(p.since, false) : f === 'until' ? dayBound(p.until, true) : p[f]]).filter(([, v]) => v !== undefined));
    const answer = (await client.backups.listPage({ ...filters, sort: p.sort, order: p.order, limit: String(p.limit), offset: String(p.offset) } as never)) as unknown as BackupPage;
    // A server without paging answers everything: page it here so the screen still works.
    if (answer.total === undefined) {
      const all = answer.backups.slice().reverse();
      return { ...answer, total: all.length, backups: all.slice(p.offset, p.offset + p.limit), paged: false };
    }
    return { ...answer, paged: true };
  }, [query.toString()]);

  const set = (changes: Record<string, string | number | undefined>): void => {
    const next = { ...p, ...changes };
    go('backups', { ...Object.fromEntries(FILTERS.map((f) => [f, next[f]])), sort: next.sort === 'createdAt' ? undefined : next.sort, order: next.order === 'desc' ? undefined : next.order, limit: next.limit === 25 ? undefined : next.limit, offset: next.offset || undefined });
  };
  const sortBy = (key: SortKey): void => set({ sort: key, order: p.sort === key && p.order === 'desc' ? 'asc' : 'desc', offset: 0 });
  const filtered = FILTERS.some((f) => p[f]);
  const sourceNames = new Map((names.data?.sources ?? []).map((s) => [s.location, s.name]));
  const data = page.data;
  const total = data?.total ?? 0;
  const from = total ? p.offset + 1 : 0;
  const to = Math.min(total, p.offset + p.limit);

  return (
    <>
      <PageHeader title="Backups" subtitle={data ? `${counted(total, 'backup')}${filtered ? (total === 1 ? ' matches the filters' : ' match the filters') : ''} in ${data.repository}` : 'Every backup of every repository'}>
        {can(role, 'operator') ? (
          <button type="button" class="btn btn-primary" onClick={() => setNewOpen(true)}>
            New backup
          </button>
        ) : null}
      </PageHeader>

      {started ? (
        <JobPanel
          jobId={started.jobId}
          title={`Backup ${started.backupId}`}
          onEnd={() => page.reload()}
          onDismiss={() => setStarted(undefined)}
        />
      ) : null}

      <form class="card filters" aria-label="Filter backups" onSubmit={(e) => e.preventDefault()}>
        <SelectField
          id="f-source"
          label="Source"
          value={p.source ?? ''}
          blank="All sources"
          // A source named in the URL but no longer registered stays choosable.
          values={[...registeredSources, ...(p.source && !registeredSources.includes(p.source) ? [p.source] : [])]}
          onChange={(v) => set({ source: v || undefined, offset: 0 })}
        />
        <SelectField id="f-repository" label="Repository" value={p.repository ?? ''} blank="default" values={names.data?.repositories.map((r) => r.name) ?? []} onChange={(v) => set({ repository: v || undefined, offset: 0 })} />
        <SelectField id="f-status" label="Status" value={p.status ?? ''} blank="Any status" values={STATUSES} onChange={(v) => set({ status: v || undefined, offset: 0 })} />
        <SelectField id="f-type" label="Type" value={p.type ?? ''} blank="Any type" values={['manual', 'scheduled']} onChange={(v) => set({ type: v || undefined, offset: 0 })} />
        <SelectField id="f-schedule" label="Schedule" value={p.schedule ?? ''} blank="Any schedule" values={names.data?.schedules.map((s) => s.name) ?? []} onChange={(v) => set({ schedule: v || undefined, offset: 0 })} />
        <Field id="f-since" label="From">
          <input id="f-since" type="date" value={p.since ?? ''} onChange={(e) => set({ since: (e.currentTarget as HTMLInputElement).value || undefined, offset: 0 })} />
        </Field>
        <Field id="f-until" label="To">
          <input id="f-until" type="date" value={p.until ?? ''} onChange={(e) => set({ until: (e.currentTarget as HTMLInputElement).value || undefined, offset: 0 })} />
        </Field>
        <div class="phone-only">
          <Field id="f-sort" label="Sort by">
            <select
              id="f-sort"
              value={`${p.sort}:${p.order}`}
              onChange={(e) => {
                const [sort, order] = (e.currentTarget as HTMLSelectElement).value.split(':');
                set({ ...sortOf(sort, order), offset: 0 });
              }}
            >
              {SORT_CHOICES.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </Field>
        </div>
        {filtered ? (
          <div class="field field-button">
            <button type="button" class="btn btn-ghost" onClick={() => go('backups')}>
              Clear filters
            </button>
          </div>
        ) : null}
      </form>

      <ErrorNote error={page.error} title="Could not list the backups" />
      {data && data.damaged.length ? (
        <div class="note note-warn" role="status">
          {counted(data.damaged.length, 'damaged object')} under backups/: {data.damaged.slice(0, 3).map((d) => `${d.id} (${d.message})`).join('; ')}
          {data.damaged.length > 3 ? '…' : ''} Run <code>cairn verify</code>.
        </div>
      ) : null}

      <div class="card card-flush">
        {page.loading && !data ? <Loading /> : null}
        {data ? (
          data.backups.length === 0 ? (
            <Empty>{filtered ? 'No backup matches these filters.' : 'No backups in this repository yet.'}</Empty>
          ) : (
            <TableWrap caption="Backups" stack>
              <thead>
                <tr>
                  <SortHeader k="id" p={p} onSort={sortBy} />
                  <th scope="col">Status</th>
                  <th scope="col">Source</th>
                  <SortHeader k="createdAt" p={p} onSort={sortBy} />
                  <SortHeader k="logicalBytes" p={p} onSort={sortBy} num />
                  <SortHeader k="storedBytes" p={p} onSort={sortBy} num />
                  <SortHeader k="expiresAt" p={p} onSort={sortBy} />
                </tr>
              </thead>
              <tbody aria-busy={page.loading}>
                {data.backups.map((b) => {
                  const key = b.id ?? ('jobId' in b ? b.jobId : '');
                  const done = b.status === 'SUCCESS';
                  return (
                    <tr key={key} data-testid={`backup-row-${key}`}>
                      <th scope="row" class="mono nowrap">
                        {b.id ? <a href={href(`backups/${encodeURIComponent(b.id)}`, { repository: p.repository })}>{b.id}</a> : <a href={href('jobs')}>{key}</a>}
                      </th>
                      <td data-label="Status">
                        <Badge value={b.status} />
                        {b.status === 'FAILED' && b.error ? <div class="small text-bad" title={b.error.message}>{b.error.code}</div> : null}
                      </td>
                      <td data-label="Source" class="cell-source">
                        <span title={b.source.location}>{('name' in b.source && b.source.name) || sourceNames.get(b.source.location) || b.source.location}</span>
                        {'type' in b ? (
                          <div class="small muted">{b.type === 'scheduled' ? `scheduled${b.schedule ? `: ${b.schedule}` : ''}` : 'manual'}</div>
                        ) : null}
                      </td>
                      <td data-label="Created">
                        <Time iso={b.createdAt} />
                        {done ? <div class="small muted">took {duration(b.durationMs)}</div> : null}
                      </td>
                      <td data-label="Size" class="num">{done ? bytes(b.size.logicalBytes) : '—'}</td>
                      <td data-label="Stored" class="num">
                        {done ? (
                          <>
                            {bytes(b.size.storedBytes)}
                            <div class="small muted" title="bytes this backup added to the repository">+{bytes(b.size.newBytes)} new</div>
                          </>
                        ) : (
                          '—'
                        )}
                      </td>
                      <td data-label="Expires">{done ? b.expiresAt ? <Time iso={b.expiresAt} /> : <span class="muted">never</span> : '—'}</td>
                    </tr>
                  );
                })}
              </tbody>
            </TableWrap>
          )
        ) : null}
        {data && total > 0 ? (
          <nav class="pager" aria-label="Pages">
            <span>
              {from.toLocaleString('en-US')}–{to.toLocaleString('en-US')} of {total.toLocaleString('en-US')}
            </span>
            <label class="inline-label">
              Per page{' '}
              <select value={String(p.limit)} onChange={(e) => set({ limit: Number((e.currentTarget as HTMLSelectElement).value), offset: 0 })}>
                {LIMITS.map((l) => (
                  <option key={l} value={String(l)}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" class="btn btn-small" disabled={p.offset === 0} onClick={() => set({ offset: Math.max(0, p.offset - p.limit) })}>
              Previous
            </button>
            <button type="button" class="btn btn-small" disabled={to >= total} onClick={() => set({ offset: p.offset + p.limit })}>
              Next
            </button>
          </nav>
        ) : null}
      </div>

      <NewBackupDialog
        open={newOpen}
        onClose={() => setNewOpen(false)}
        sources={names.data?.sources.map((s) => s.name) ?? []}
        repositories={['default', ...(names.data?.repositories.map((r) => r.name) ?? [])]}
        repository={p.repository}
        onStarted={(s) => {
          setNewOpen(false);
          setStarted(s);
          page.reload();
        }}
      />
    </>
  );
}

function SortHeader({ k, p, onSort, num }: { k: SortKey; p: { sort: SortKey; order: 'asc' | 'desc' }; onSort: (k: SortKey) => void; num?: boolean }) {
  const active = p.sort === k;
  return (
    <th scope="col" class={num ? 'num' : undefined} aria-sort={active ? (p.order === 'asc' ? 'ascending' : 'descending') : 'none'}>
      <button type="button" class="sort" onClick={() => onSort(k)}>
        {SORTABLE[k]}
        <span class="sort-mark" aria-hidden="true">
          {active ? (p.order === 'asc' ? '▲' : '▼') : '↕'}
        </span>
      </button>
    </th>
  );
}

function NewBackupDialog({ open, onClose, sources, repositories, repository, onStarted }: { open: boolean; onClose: () => void; sources: string[]; repositories: string[]; repository?: string; onStarted: (s: { jobId: string; backupId: string }) => void }) {
  const [source, setSource] = useState('');
  const [repo, setRepo] = useState(repository ?? 'default');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const chosen = source || sources[0] || '';
  const params = { source: chosen, ...(repo !== 'default' ? { repository: repo } : {}) };
  return (
    <Dialog open={open} title="New backup" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            const job = await client.backups.create(params);
            onStarted({ jobId: job.id, backupId: typeof job.params.id === 'string' ? job.params.id : chosen });
          } catch (err) {
            setError(describeError(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        {sources.length === 0 ? (
          <p class="note note-info">
            No source is registered. An admin registers one on the <a href={href('sources')}>Sources</a> screen.
          </p>
        ) : null}
        <SelectField id="nb-source" label="Source" value={chosen} values={sources} required onChange={setSource} />
        <SelectField id="nb-repo" label="Repository" value={repo} values={repositories} onChange={setRepo} />
        <ActionError message={error} />
        <DialogActions label={busy ? 'Starting…' : 'Start backup'} disabled={busy || !chosen} onCancel={onClose} />
        {chosen ? <Equivalents action="backup.create" params={params} /> : null}
      </form>
    </Dialog>
  );
}
