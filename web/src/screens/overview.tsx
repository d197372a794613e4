/** Overview: every source's health (failures first), with a size/duration chart, and the repositories. */
import { client } from '../api.js';
import { HistoryChart } from '../chart.js';
import { age, bytes, count } from '../format.js';
import { href } from '../router.js';
import type { Overview, SourceHealth } from '../types.js';
import { Badge, Empty, ErrorNote, Loading, PageHeader, TableHead, TableWrap, Time, useAsync } from '../ui.js';

const STATUS_TEXT: Record<SourceHealth['status'], string> = {
  failing: 'Last backup failed',
  late: 'Backup overdue',
  never: 'No backup yet',
  running: 'Backup running',
  ok: 'Healthy',
};

function ratio(r: number | null | undefined): string {
  return r ? `${r.toFixed(r < 10 ? 1 : 0)}×` : '—';
}

export function OverviewScreen() {
  const { data, error, loading, reload } = useOverview();
  const sources = data?.sources ?? [];
  const counts = { failing: 0, late: 0, never: 0, running: 0, ok: 0 };
  for (const s of sources) counts[s.status]++;
  const stored = (data?.repositories ?? []).reduce((n, r) => n + (r.storedBytes || 0), 0);
  return (
    <>
      <PageHeader title="Overview" subtitle={data ? <>Updated <Time iso={data.generatedAt} /></> : 'Backup health of every source'}>
        <button type="button" class="btn" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </PageHeader>
      <ErrorNote error={error} title="Could not load the overview" />
      {loading && !data ? <Loading /> : null}
      {data ? (
        <>
          <section class="stats" aria-label="Summary">
            <div class="stat">
              <span class="stat-label">Sources</span>
              <span class="stat-value">{sources.length}</span>
            </div>
            <div class={`stat${counts.failing ? ' stat-bad' : ''}`}>
              <span class="stat-label">Failing</span>
              <span class="stat-value">{counts.failing}</span>
            </div>
            <div class={`stat${counts.late + counts.never ? ' stat-warn' : ''}`}>
              <span class="stat-label">Late or never backed up</span>
              <span class="stat-value">{counts.late + counts.never}</span>
            </div>
            <div class="stat">
              <span class="stat-label">Stored in repositories</span>
              <span class="stat-value">{bytes(stored)}</span>
            </div>
          </section>

          <h2 class="section-title">Sources</h2>
          {sources.length === 0 ? (
            <div class="card">
              <Empty>
                No backups yet. Register a source on the <a href={href('sources')}>Sources</a> screen and back it up.
              </Empty>
            </div>
          ) : (
            <div class="source-grid">
              {sources.map((s) => (
                <SourceCard key={`${s.repository}:${s.key}`} s={s} name={displayName(s, data.names)} />
              ))}
            </div>
          )}

          <h2 class="section-title">Repositories</h2>
          <div class="card card-flush">
            <TableWrap caption="Repositories">
              <TableHead columns={['Name', 'Location', ['Backups', 'num'], ['Logical', 'num'], ['Stored', 'num'], ['Dedup', 'num']]} />
              <tbody>
                {data.repositories.map((r) => (
                  <tr key={r.name}>
                    <th scope="row">
                      <a href={href('backups', { repository: r.name })}>{r.name}</a>
                    </th>
                    <td class="mono wrap">{r.location}</td>
                    {r.error ? (
                      <td colSpan={4} class="text-bad">
                        {typeof r.error === 'string' ? r.error : `${r.error.message} (${r.error.code})`}
                      </td>
                    ) : (
                      <>
                        <td class="num">{count(r.backups)}</td>
                        <td class="num">{bytes(r.logicalBytes)}</td>
                        <td class="num">{bytes(r.storedBytes)}</td>
                        <td class="num">{ratio(r.dedupRatio)}</td>
                      </>
                    )}
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          </div>
        </>
      ) : null}
    </>
  );
}

/**
 * The overview and the registered sources (to show a source by its registered name). Refreshed
 * by the button; the server builds it from its caches, so it is cheap.
 */
function useOverview() {
  return useAsync(async (): Promise<Overview & { names: Map<string, string> }> => {
    const [overview, sources] = await Promise.all([client.overview.get(), client.sources.list().catch(() => [])]);
    return { ...overview, names: new Map(sources.map((s) => [s.location, s.name])) };
  }, []);
}

/** A source's registered name, else the last part of its location (a file or database name). */
function displayName(s: SourceHealth, names: Map<string, string>): string {
  return s.names?.join(', ') ?? s.name ?? names.get(s.location) ?? s.location.replace(/[?#].*$/, '').split('/').filter(Boolean).pop() ?? s.key;
}

function SourceCard({ s, name }: { s: SourceHealth; name: string }) {
  const schedule = s.schedules.filter((x) => x.enabled && x.nextRun).sort((a, b) => String(a.nextRun).localeCompare(String(b.nextRun)))[0];
  return (
    <article class={`card source-card status-${s.status}`} aria-labelledby={`src-${s.key}-${s.repository}`}>
      <div class="source-head">
        <div class="source-title">
          <h3 id={`src-${s.key}-${s.repository}`}>
            <a href={href('backups', { source: s.location, repository: s.repository })}>{name}</a>
          </h3>
          <p class="muted small mono wrap">
            {s.kind} · {s.location} → {s.repository}
          </p>
        </div>
        <Badge value={s.status} />
      </div>
      <p class={`source-status text-${s.status === 'failing' ? 'bad' : s.status === 'late' ? 'warn' : 'muted'}`}>
        {STATUS_TEXT[s.status]}
        {s.status === 'failing' && s.lastResult?.error ? `: ${s.lastResult.error.message}` : ''}
      </p>
      <dl class="facts">
        <div>
          <dt>Newest backup</dt>
          <dd>{s.newest ? <Time iso={s.newest.completedAt} onlyRel /> : '—'}{s.ageSeconds !== null && s.newest ? <span class="visually-hidden"> ({age(s.ageSeconds)} old)</span> : null}</dd>
        </div>
        <div>
          <dt>Last result</dt>
          <dd>{s.lastResult ? <><Badge value={s.lastResult.status} /> <Time iso={s.lastResult.at} onlyRel /></> : '—'}</dd>
        </div>
        <div>
          <dt>Next run</dt>
          <dd>{schedule?.nextRun ? <Time iso={schedule.nextRun} onlyRel /> : <span class="muted">not scheduled</span>}</dd>
        </div>
        <div>
          <dt>Backups</dt>
          <dd>{count(s.backups)}</dd>
        </div>
        <div>
          <dt>Logical / added</dt>
          <dd title="What its backups hold, and what each added to the repository when it was made">
            {bytes(s.logicalBytes)} / {bytes(s.addedBytes)}
          </dd>
        </div>
        <div>
          <dt>Dedup</dt>
          <dd>{ratio(s.dedupRatio)}</dd>
        </div>
      </dl>
      {s.history.length === 0 ? null : <HistoryChart label={name} points={s.history.map((h) => ({ id: h.id, logicalBytes: h.logicalBytes, durationMs: h.durationMs }))} />}
    </article>
  );
}
