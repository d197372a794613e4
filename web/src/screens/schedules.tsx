/**
 * Schedules: each with its cron in plain words and its next runs in its own time zone; an
 * operator creates one (live cron preview: GET /v1/cron-preview; retention preview: POST
 * /v1/retention-previews), enables, disables, runs it now or removes it.
 */
import { useEffect, useState } from 'preact/hooks';
import { can, client, describeError, settle } from '../api.js';
import { JobPanel } from '../job-live.js';
import { useRole } from '../session.js';
import type { CronPreview, RetentionPreview, ScheduleShown } from '../types.js';
import type { ScheduleParams } from '../equivalents.js';
import { ActionError, Badge, Dialog, DialogActions, Empty, Equivalents, EquivalentsList, ErrorNote, Field, Loading, PageHeader, SelectField, Time, useAsync } from '../ui.js';

const KEEP = [
  ['keepLast', 'Keep last', 'newest N'],
  ['keepHourly', 'Hourly', 'N hours'],
  ['keepDaily', 'Daily', 'N days'],
  ['keepWeekly', 'Weekly', 'N weeks'],
  ['keepMonthly', 'Monthly', 'N months'],
  ['keepYearly', 'Yearly', 'N years'],
] as const;
type KeepKey = (typeof KEEP)[number][0];

function retentionText(r: Record<string, unknown>): string {
  const parts: string[] = [];
  if (r.keepLast) parts.push(`last ${String(r.keepLast)}`);
  if (r.keepWithin) parts.push(`all within ${String(r.keepWithin)}`);
  for (const [k, label] of [['keepHourly', 'hourly'], ['keepDaily', 'daily'], ['keepWeekly', 'weekly'], ['keepMonthly', 'monthly'], ['keepYearly', 'yearly']] as const) if (r[k]) parts.push(`${String(r[k])} ${label}`);
  return parts.length ? `keeps ${parts.join(', ')}` : 'keeps every backup';
}

export function SchedulesScreen() {
  const role = useRole();
  const op = can(role, 'operator');
  const list = useAsync((): Promise<ScheduleShown[]> => client.schedules.list(), []);
  const [createOpen, setCreateOpen] = useState(false);
  const [removing, setRemoving] = useState<string | undefined>();
  const [actionError, setActionError] = useState<string | undefined>();
  const [started, setStarted] = useState<{ jobId: string; name: string } | undefined>();
  const act = (p: Promise<unknown>): void => settle(p, list.reload, setActionError);
  return (
    <>
      <PageHeader title="Schedules" subtitle="Automatic backups run by this server, with their retention rules.">
        {op ? (
          <button type="button" class="btn btn-primary" onClick={() => setCreateOpen(true)}>
            New schedule
          </button>
        ) : null}
      </PageHeader>
      <ErrorNote error={list.error} title="Could not list the schedules" />
      <ActionError message={actionError} />
      {started ? <JobPanel jobId={started.jobId} title={`Run of ${started.name}`} onEnd={() => list.reload()} onDismiss={() => setStarted(undefined)} /> : null}
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.length === 0 ? (
        <div class="card">
          <Empty>No schedules yet.{op ? ' Create one to back up a source automatically.' : ''}</Empty>
        </div>
      ) : null}
      <div class="schedule-list">
        {list.data?.map((s) => (
          <article class="card schedule" key={s.name} data-testid={`schedule-${s.name}`} aria-labelledby={`sch-${s.name}`}>
            <div class="schedule-head">
              <div>
                <h2 id={`sch-${s.name}`}>{s.name}</h2>
                <p class="muted small">
                  {s.source} → {s.repository}
                  {s.copyTo ? ` (copied to ${s.copyTo})` : ''} · {retentionText(s.retention)}
                </p>
              </div>
              <Badge value={s.enabled ? 'enabled' : 'disabled'} />
            </div>
            <div class="schedule-body">
              <div>
                <p class="schedule-cron">
                  <code>{s.cron}</code> <span class="muted">({s.timezone})</span>
                </p>
                {s.description ? <p class="schedule-words">{s.description}</p> : null}
              </div>
              <div>
                <span class="field-label">Next runs ({s.timezone})</span>
                {s.nextRuns?.length ? (
                  <ol class="next-runs" data-testid="schedule-next-runs">
                    {s.nextRuns.map((r) => (
                      <li key={r}>
                        <Time iso={r} zone={s.timezone} />
                      </li>
                    ))}
                  </ol>
                ) : s.nextRun ? (
                  <ol class="next-runs" data-testid="schedule-next-runs">
                    <li>
                      <Time iso={s.nextRun} zone={s.timezone} rel />
                    </li>
                  </ol>
                ) : (
                  <p class="muted">{s.enabled ? '—' : 'none while disabled'}</p>
                )}
              </div>
            </div>
            <RecentRuns name={s.name} zone={s.timezone} />
            {op ? (
              <div class="button-row">
                <button
                  type="button"
                  class="btn btn-small"
                  onClick={() =>
                    client.schedules.runNow(s.name).then(
                      (job) => {
                        setActionError(undefined);
                        setStarted({ jobId: job.id, name: s.name });
                      },
                      (err: unknown) => setActionError(describeError(err)),
                    )
                  }
                >
                  Run now
                </button>
                {s.enabled ? (
                  <button type="button" class="btn btn-small" onClick={() => act(client.schedules.disable(s.name))}>
                    Disable
                  </button>
                ) : (
                  <button type="button" class="btn btn-small" onClick={() => act(client.schedules.enable(s.name))}>
                    Enable
                  </button>
                )}
                <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRemoving(s.name)}>
                  Remove
                </button>
                <EquivalentsList
                  items={[
                    { label: 'Run now', action: 'schedule.runNow', params: { name: s.name } },
                    s.enabled ? { label: 'Disable', action: 'schedule.disable', params: { name: s.name } } : { label: 'Enable', action: 'schedule.enable', params: { name: s.name } },
                    { label: 'Remove', action: 'schedule.remove', params: { name: s.name } },
                  ]}
                />
              </div>
            ) : null}
          </article>
        ))}
      </div>
      <Dialog open={removing !== undefined} title={`Remove schedule ${removing ?? ''}?`} onClose={() => setRemoving(undefined)}>
        <p>The schedule stops; the backups it made are kept (and no longer pruned by its rules).</p>
        <DialogActions
          label="Remove schedule"
          danger
          onConfirm={() => {
            const name = removing!;
            setRemoving(undefined);
            act(client.schedules.remove(name));
          }}
          onCancel={() => setRemoving(undefined)}
          cancelLabel="Keep it"
        />
        {removing ? <Equivalents action="schedule.remove" params={{ name: removing }} /> : null}
      </Dialog>
      {op ? (
        <CreateDialog
          open={createOpen}
          onClose={() => setCreateOpen(false)}
          onCreated={() => {
            setCreateOpen(false);
            list.reload();
          }}
        />
      ) : null}
    </>
  );
}

const RUN_TONE: Record<string, string> = { started: 'SUCCESS', queued: 'STARTED', delayed: 'STARTED', failed: 'FAILED' };

/** A schedule's latest due times (started, skipped and why, failed and why), read when opened. */
function RecentRuns({ name, zone }: { name: string; zone: string }) {
  const [open, setOpen] = useState(false);
  const detail = useAsync(() => (open ? client.schedules.get(name) : Promise.resolve(undefined)), [open, name]);
  const runs = detail.data?.runs.slice(0, 10) ?? [];
  return (
    <details class="recent-runs" onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary>Recent runs</summary>
      {detail.loading && open ? <Loading /> : null}
      <ErrorNote error={detail.error} />
      {detail.data && runs.length === 0 ? <p class="muted small">No run yet.</p> : null}
      {runs.length ? (
        <ul class="run-list">
          {runs.map((r) => (
            <li key={`${r.dueAt}-${r.at}`}>
              <Time iso={r.dueAt} zone={zone} /> <span class={`badge tone-${RUN_TONE[r.status] === 'SUCCESS' ? 'ok' : RUN_TONE[r.status] === 'FAILED' ? 'bad' : r.status.startsWith('skipped') ? 'warn' : 'info'}`}>{r.status}</span>
              {r.jobId ? (
                <>
                  {' '}
                  <a class="mono small" href={`#/jobs`}>
                    {r.jobId}
                  </a>
                </>
              ) : null}
              {r.reason ? <div class="small muted">{r.reason}</div> : null}
            </li>
          ))}
        </ul>
      ) : null}
    </details>
  );
}

/** The viewer's zone, the default for a new schedule. */
const HERE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
const ZONES: string[] = (() => {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
})();

/** `value` once it has not changed for `ms`. */
function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [JSON.stringify(value), ms]);
  return v;
}

function CreateDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: () => void }) {
  const names = useAsync(async () => (open ? Promise.all([client.sources.list(), client.repositories.list()]) : undefined), [open]);
  const [name, setName] = useState('');
  const [source, setSource] = useState('');
  const [repository, setRepository] = useState('default');
  const [cron, setCron] = useState('0 3 * * *');
  const [timezone, setTimezone] = useState(HERE);
  const [keep, setKeep] = useState<Partial<Record<KeepKey, string>>>({ keepDaily: '7', keepWeekly: '4' });
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const sources = names.data?.[0] ?? [];
  const src = source || sources[0]?.name || '';
  const retention = Object.fromEntries(Object.entries(keep).filter(([, v]) => v && Number(v) > 0).map(([k, v]) => [k, Number(v)])) as Partial<Record<KeepKey, number>>;
  const params: ScheduleParams = { name: name.trim(), source: src, ...(repository !== 'default' ? { repository } : {}), cron: cron.trim(), timezone: timezone.trim(), ...retention };

  const cronKey = useDebounced({ cron: cron.trim(), timezone: timezone.trim() }, 300);
  const preview = useAsync(
    (): Promise<CronPreview | undefined> => (open && cronKey.cron ? client.schedules.cronPreview(cronKey.cron, cronKey.timezone || undefined, 5) : Promise.resolve(undefined)),
    [open, cronKey.cron, cronKey.timezone],
  );
  const retKey = useDebounced({ src, repository, retention, timezone: timezone.trim() }, 400);
  const retentionPreview = useAsync(
    (): Promise<RetentionPreview | undefined> =>
      open && retKey.src && Object.keys(retKey.retention).length
        ? client.retention.preview({ source: retKey.src, ...(retKey.repository !== 'default' ? { repository: retKey.repository } : {}), ...retKey.retention, ...(retKey.timezone ? { timezone: retKey.timezone } : {}) })
        : Promise.resolve(undefined),
    [open, JSON.stringify(retKey)],
  );

  return (
    <Dialog open={open} title="New schedule" onClose={onClose} wide>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            await client.schedules.create(params);
            setError(undefined);
            onCreated();
          } catch (err) {
            setError(describeError(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="form-grid">
          <Field id="s-name" label="Name" hint="lowercase letters, digits, - and _">
            <input id="s-name" value={name} required pattern="[a-z0-9][a-z0-9_\-]*" onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} aria-describedby="s-name-hint" />
          </Field>
          <SelectField id="s-source" label="Source" value={src} values={sources.map((s) => s.name)} required onChange={setSource} />
          <SelectField id="s-repo" label="Repository" value={repository} values={['default', ...(names.data?.[1] ?? []).map((r) => r.name)]} onChange={setRepository} />
          <Field id="s-cron" label="Cron" hint="minute hour day month weekday, e.g. 0 3 * * *">
            <input id="s-cron" class="mono" value={cron} required onInput={(e) => setCron((e.currentTarget as HTMLInputElement).value)} aria-describedby="s-cron-hint" />
          </Field>
          <Field id="s-zone" label="Time zone">
            <input id="s-zone" list="s-zones" value={timezone} onInput={(e) => setTimezone((e.currentTarget as HTMLInputElement).value)} />
            <datalist id="s-zones">
              {ZONES.map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
          </Field>
        </div>
        <div class="cron-preview" aria-live="polite">
          {preview.error ? (
            <p class="text-bad small" role="alert">
              {describeError(preview.error)}
            </p>
          ) : preview.data ? (
            <>
              <p class="schedule-words">{preview.data.description}</p>
              <span class="field-label">Next runs ({preview.data.timezone})</span>
              <ol class="next-runs" data-testid="cron-preview-runs">
                {preview.data.nextRuns.map((r) => (
                  <li key={r}>
                    <Time iso={r} zone={preview.data!.timezone} />
                  </li>
                ))}
              </ol>
            </>
          ) : null}
        </div>
        <fieldset>
          <legend>Retention (after each run)</legend>
          <p class="hint mb">Each rule keeps the newest backup of each of the last N periods; a backup any rule keeps stays.</p>
          <div class="form-grid form-grid-narrow">
            {KEEP.map(([k, label, hint]) => (
              <Field key={k} id={`s-${k}`} label={label} hint={hint}>
                <input id={`s-${k}`} type="number" min={0} inputMode="numeric" value={keep[k] ?? ''} onInput={(e) => setKeep({ ...keep, [k]: (e.currentTarget as HTMLInputElement).value })} aria-describedby={`s-${k}-hint`} />
              </Field>
            ))}
          </div>
          {retentionPreview.data ? (
            <p class="small" aria-live="polite">
              With these rules, {src}'s scheduled backups in {repository}: <strong>{retentionPreview.data.keep.length} kept</strong>, <strong>{retentionPreview.data.remove.length} removed</strong>
              {retentionPreview.data.remove.length ? ` (${retentionPreview.data.remove.slice(0, 3).map((r) => r.id).join(', ')}${retentionPreview.data.remove.length > 3 ? '…' : ''})` : ''}.
            </p>
          ) : retentionPreview.error ? (
            <p class="small muted">Retention preview unavailable: {describeError(retentionPreview.error)}</p>
          ) : (
            <p class="small muted">No rule: every backup is kept.</p>
          )}
        </fieldset>
        <ActionError message={error} />
        <DialogActions label="Create schedule" disabled={busy || !src} onCancel={onClose} />
        <Equivalents action="schedule.create" params={params} />
      </form>
    </Dialog>
  );
}
