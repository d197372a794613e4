/**
 * The restore wizard: 1 backup (one picked, or the latest of a source), 2 target (a registered
 * source; a URL only where the server runs with --allow-urls), 3 scope (the backup's own
 * collections, renames), 4 conflict policy → "Check" (dry run: POST /v1/restores dryRun) lists
 * conflicts → "Start restore" → the job live, with cancel.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { can, CairnApiError, client } from '../api.js';
import { bytes, count, counted } from '../format.js';
import { JobPanel } from '../job-live.js';
import { href } from '../router.js';
import { useRole } from '../session.js';
import type { BackupDetail } from '../../../src/sdk/index.js';
import type { BackupPage, DryRun } from '../types.js';
import type { RestoreParams } from '../equivalents.js';
import { EquivalentsList, ErrorNote, Field, Loading, PageHeader, SelectField, TableHead, TableWrap, Time, useAsync } from '../ui.js';

/** A page of the listing (the SDK's listPage, typed as the console reads it). */
const listPage = async (query: Record<string, string>): Promise<BackupPage> => (await client.backups.listPage(query as never)) as unknown as BackupPage;

const STEPS = ['Backup', 'Target', 'Scope', 'Check and start'];
type Policy = 'fail' | 'overwrite' | 'replace';

const POLICIES: { value: Policy; title: string; text: string }[] = [
  { value: 'fail', title: 'Stop on conflict', text: 'Refuse when an object to restore already exists in the target (safest).' },
  { value: 'overwrite', title: 'Overwrite', text: 'Existing objects of the same names are dropped and restored; others in the target stay.' },
  { value: 'replace', title: 'Replace the whole database', text: 'The target becomes exactly the backup (built aside, then switched). No scope or renames.' },
];

export function RestoreScreen({ query }: { query: URLSearchParams }) {
  const role = useRole();
  if (!can(role, 'operator'))
    return (
      <>
        <PageHeader title="Restore" />
        <p class="note note-info">Restoring needs an operator or admin token.</p>
      </>
    );
  return <Wizard initialBackup={query.get('backup') ?? ''} initialRepository={query.get('repository') ?? 'default'} />;
}

function Wizard({ initialBackup, initialRepository }: { initialBackup: string; initialRepository: string }) {
  const [step, setStep] = useState(initialBackup ? 1 : 0);
  const [repository, setRepository] = useState(initialRepository);
  const [pick, setPick] = useState<'backup' | 'latest'>('backup');
  const [backup, setBackup] = useState(initialBackup);
  const [latestOf, setLatestOf] = useState('');
  const [target, setTarget] = useState('');
  const [otherTarget, setOtherTarget] = useState('');
  const [selected, setSelected] = useState<Set<string> | undefined>();
  const [renames, setRenames] = useState<Record<string, string>>({});
  const [policy, setPolicy] = useState<Policy>('fail');
  const [plan, setPlan] = useState<DryRun | undefined>();
  const [planError, setPlanError] = useState<unknown>();
  const [checking, setChecking] = useState(false);
  const [jobId, setJobId] = useState<string | undefined>();
  const [startError, setStartError] = useState<unknown>();

  const names = useAsync(async () => {
    const [sources, repositories] = await Promise.all([client.sources.list(), client.repositories.list()]);
    return { sources, repositories };
  }, []);
  const recent = useAsync(
    () => listPage({ ...(repository === 'default' ? {} : { repository }), status: 'SUCCESS', sort: 'createdAt', order: 'desc', limit: '100' }),
    [repository],
  );
  const completeBackups = useMemo(() => {
    const list = (recent.data?.backups ?? []).filter((b) => b.status === 'SUCCESS' && b.id);
    // A server without paging lists oldest first.
    return recent.data?.total === undefined ? list.reverse() : list;
  }, [recent.data]);

  // "Latest of source X": the newest complete backup of that source in the listing.
  const latest = useAsync(async () => {
    if (pick !== 'latest' || !latestOf) return undefined;
    const page = await listPage({ ...(repository === 'default' ? {} : { repository }), source: latestOf, status: 'SUCCESS', sort: 'createdAt', order: 'desc', limit: '1' });
    const ok = page.backups.filter((b) => b.status === 'SUCCESS');
    return (page.total === undefined ? ok[ok.length - 1] : ok[0])?.id ?? null;
  }, [pick, latestOf, repository]);
  const backupId = pick === 'latest' ? (latest.data ?? '') : backup;

  const detail = useAsync(() => (backupId ? client.backups.get(backupId, repository === 'default' ? {} : { repository }) : Promise.resolve(undefined)), [backupId, repository]);
  const manifest = detail.data && !('jobId' in detail.data) ? (detail.data as BackupDetail) : undefined;
  const selectable = (manifest?.collections ?? []).filter((c) => c.selectable !== false);

  // A new backup: every collection selected, no renames.
  useEffect(() => {
    setSelected(undefined);
    setRenames({});
  }, [backupId]);

  const targetName = target === '__other' ? otherTarget.trim() : target;
  const chosen = selected ?? new Set(selectable.map((c) => c.name));
  const partial = selectable.length > 0 && chosen.size < selectable.length;
  const cleanRenames = Object.fromEntries(Object.entries(renames).filter(([from, to]) => to.trim() && chosen.has(from)).map(([f, t]) => [f, t.trim()]));
  const request: RestoreParams = {
    backup: backupId,
    ...(repository !== 'default' ? { repository } : {}),
    target: targetName,
    ...(policy !== 'replace' && partial ? { include: [...chosen] } : {}),
    ...(policy !== 'replace' && Object.keys(cleanRenames).length ? { renames: cleanRenames } : {}),
    onConflict: policy,
  };
  const requestKey = JSON.stringify(request);
  // Any change makes the last check stale.
  useEffect(() => {
    setPlan(undefined);
    setPlanError(undefined);
  }, [requestKey]);

  const check = async (): Promise<void> => {
    setChecking(true);
    setPlanError(undefined);
    try {
      setPlan(await client.restores.dryRun(request));
    } catch (err) {
      setPlanError(err);
    } finally {
      setChecking(false);
    }
  };
  const dryRunMissing = planError instanceof CairnApiError && (planError.status === 400 && /dryRun/.test(planError.message));
  const start = async (): Promise<void> => {
    setStartError(undefined);
    try {
      const job = await client.restores.create(request as never);
      setJobId(job.id);
    } catch (err) {
      setStartError(err);
    }
  };

  const canNext = [Boolean(backupId && manifest), Boolean(targetName), policy === 'replace' || chosen.size > 0, true][step];

  return (
    <>
      <PageHeader title="Restore" subtitle="Put a backup back into a database, all of it or some collections, under new names if needed." />
      <ol class="steps" aria-label="Steps">
        {STEPS.map((s, i) => (
          <li key={s} aria-current={i === step ? 'step' : undefined} class={i < step ? 'done' : undefined}>
            {s}
          </li>
        ))}
      </ol>

      {jobId ? (
        <>
          <JobPanel jobId={jobId} title={`Restore of ${backupId} into ${targetName}`} testid="restore-result" />
          <p class="button-row">
            <button type="button" class="btn" onClick={() => { setJobId(undefined); setPlan(undefined); setStep(0); }}>
              Another restore
            </button>
            <a href={href('jobs')}>All jobs</a> · <a href={href(`backups/${encodeURIComponent(backupId)}`, { repository: repository === 'default' ? undefined : repository })}>Back to the backup</a>
          </p>
        </>
      ) : (
        <section class="card" aria-labelledby="step-title">
          <h2 id="step-title" class="card-title">
            {step + 1}. {STEPS[step]}
          </h2>

          {step === 0 ? (
            <>
              <SelectField id="r-repo" label="Repository" value={repository} values={['default', ...(names.data?.repositories.map((r) => r.name) ?? [])]} onChange={setRepository} />
              <fieldset>
                <legend>Which backup</legend>
                <div class="radio-cards">
                  <label class="radio-card">
                    <input type="radio" name="pick" checked={pick === 'backup'} onChange={() => setPick('backup')} />
                    <span>
                      <strong>A specific backup</strong>
                      <span class="muted small">Pick one from the newest 100.</span>
                    </span>
                  </label>
                  <label class="radio-card">
                    <input type="radio" name="pick" checked={pick === 'latest'} onChange={() => setPick('latest')} />
                    <span>
                      <strong>The latest backup of a source</strong>
                      <span class="muted small">Whatever is newest when you start.</span>
                    </span>
                  </label>
                </div>
              </fieldset>
              {pick === 'backup' ? (
                <Field id="r-backup" label="Backup">
                  <select id="r-backup" value={backup} onChange={(e) => setBackup((e.currentTarget as HTMLSelectElement).value)}>
                    <option value="">Choose a backup…</option>
                    {backup && !completeBackups.some((b) => b.id === backup) ? <option value={backup}>{backup}</option> : null}
                    {completeBackups.map((b) => (
                      <option key={b.id} value={b.id ?? ''}>
                        {b.id}
                      </option>
                    ))}
                  </select>
                </Field>
              ) : (
                <SelectField id="r-latest" label="Source" value={latestOf} blank="Choose a source…" values={names.data?.sources.map((s) => s.name) ?? []} onChange={setLatestOf} />
              )}
              {pick === 'latest' && latestOf && latest.data === null ? <p class="note note-warn">No complete backup of {latestOf} in this repository.</p> : null}
              <ErrorNote error={recent.error ?? detail.error ?? latest.error} />
              {detail.loading && backupId ? <Loading label="Reading the backup…" /> : null}
              {manifest ? (
                <p class="note note-info">
                  <strong>{manifest.id}</strong>: {manifest.source.kind} {manifest.source.name}, taken <Time iso={manifest.createdAt} rel />; {counted(manifest.totals.collections, 'collection')},{' '}
                  {counted(manifest.totals.rows, 'row')}, {bytes(manifest.totals.logicalBytes)}.
                </p>
              ) : null}
            </>
          ) : null}

          {step === 1 ? (
            <>
              <p class="muted">
                The target is a registered source (the database it names is written). To restore into a new database, an admin registers it first on the{' '}
                <a href={href('sources')}>Sources</a> screen; a URL works only when the server runs with <code>--allow-urls</code>.
              </p>
              <Field id="r-target" label="Restore into">
                <select id="r-target" value={target} onChange={(e) => setTarget((e.currentTarget as HTMLSelectElement).value)}>
                  <option value="">Choose a target…</option>
                  {names.data?.sources.map((s) => (
                    <option key={s.name} value={s.name}>
                      {s.name} — {s.location}
                    </option>
                  ))}
                  <option value="__other">Another database (URL)…</option>
                </select>
              </Field>
              {target === '__other' ? (
                <Field id="r-target-url" label="Target URL" hint="e.g. sqlite:///srv/copy.db or postgres://app@db/shop_copy (needs --allow-urls)">
                  <input id="r-target-url" value={otherTarget} onInput={(e) => setOtherTarget((e.currentTarget as HTMLInputElement).value)} aria-describedby="r-target-url-hint" />
                </Field>
              ) : null}
              {manifest && names.data?.sources.some((s) => s.name === target && s.location === manifest.source.location) ? (
                <p class="note note-warn">This is the database the backup was taken from: existing objects will conflict unless you rename them or choose a conflict policy.</p>
              ) : null}
            </>
          ) : null}

          {step === 2 ? (
            policy === 'replace' ? (
              <p class="note note-info">“Replace the whole database” restores everything: no scope or renames. Change the policy in the next step to choose collections.</p>
            ) : (
              <>
                <p class="muted">
                  Choose what to restore ({chosen.size} of {selectable.length} selected). Give a new name to restore a collection beside the existing one.
                </p>
                <div class="button-row mb">
                  <button type="button" class="btn btn-small" onClick={() => setSelected(new Set(selectable.map((c) => c.name)))}>
                    Select all
                  </button>
                  <button type="button" class="btn btn-small" onClick={() => setSelected(new Set())}>
                    Select none
                  </button>
                </div>
                <div class="check-list">
                  <TableWrap caption="Collections to restore">
                    <TableHead columns={['Restore', 'Collection', ['Kind', 'hide-phone'], ['Rows', 'num hide-phone'], 'Restore as']} />
                    <tbody>
                      {selectable.map((c, i) => (
                        <tr key={c.name}>
                          <td>
                            <input
                              type="checkbox"
                              id={`r-col-${i}`}
                              checked={chosen.has(c.name)}
                              onChange={(e) => {
                                const next = new Set(chosen);
                                if ((e.currentTarget as HTMLInputElement).checked) next.add(c.name);
                                else next.delete(c.name);
                                setSelected(next);
                              }}
                            />
                          </td>
                          <th scope="row" class="mono">
                            <label for={`r-col-${i}`}>{c.name}</label>
                          </th>
                          <td class="hide-phone">{c.kind}</td>
                          <td class="num hide-phone">{count(c.rowCount)}</td>
                          <td>
                            <input
                              aria-label={`New name for ${c.name}`}
                              placeholder="same name"
                              value={renames[c.name] ?? ''}
                              disabled={!chosen.has(c.name)}
                              onInput={(e) => setRenames({ ...renames, [c.name]: (e.currentTarget as HTMLInputElement).value })}
                            />
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </TableWrap>
                </div>
              </>
            )
          ) : null}

          {step === 3 ? (
            <>
              <fieldset>
                <legend>When an object already exists in the target</legend>
                <div class="radio-cards">
                  {POLICIES.map((p) => (
                    <label class="radio-card" key={p.value}>
                      <input type="radio" name="policy" value={p.value} checked={policy === p.value} onChange={() => setPolicy(p.value)} />
                      <span>
                        <strong>{p.title}</strong>
                        <span class="muted small">{p.text}</span>
                      </span>
                    </label>
                  ))}
                </div>
              </fieldset>
              <p class="muted small">
                Restoring <strong>{backupId}</strong> into <strong>{targetName}</strong>
                {request.include ? `, ${request.include.length} collection${request.include.length === 1 ? '' : 's'}` : ', every collection'}
                {request.renames ? `, ${Object.keys(request.renames).length} renamed` : ''}.
              </p>
              <div class="button-row">
                <button type="button" class="btn" data-testid="restore-check" onClick={check} disabled={checking}>
                  {checking ? 'Checking…' : 'Check'}
                </button>
                <button type="button" class="btn btn-primary" data-testid="restore-start" onClick={start} disabled={!(plan?.ok || dryRunMissing)}>
                  Start restore
                </button>
                {!plan && !dryRunMissing ? <span class="muted small">Run the check first: it changes nothing.</span> : null}
              </div>
              {dryRunMissing ? <p class="note note-warn">This server cannot check a restore in advance: starting it runs the same checks.</p> : <ErrorNote error={planError} title="The check failed" />}
              {plan ? <PlanView plan={plan} /> : null}
              <ErrorNote error={startError} title="The restore did not start" />
              <EquivalentsList
                items={[
                  { label: 'Check (dry run)', action: 'restore.dryRun', params: request },
                  { label: 'Start restore', action: 'restore.create', params: request },
                ]}
              />
            </>
          ) : null}

          <div class="wizard-nav">
            <button type="button" class="btn" disabled={step === 0} onClick={() => setStep(step - 1)}>
              Back
            </button>
            {step < STEPS.length - 1 ? (
              <button type="button" class="btn btn-primary" disabled={!canNext} onClick={() => setStep(step + 1)}>
                Next
              </button>
            ) : null}
          </div>
        </section>
      )}
    </>
  );
}

function PlanView({ plan }: { plan: DryRun }) {
  return (
    <div class="plan">
      {plan.ok ? (
        <p class="note note-ok" role="status">
          No conflict: {plan.message}
        </p>
      ) : (
        <div class="note note-error" role="alert" data-testid="restore-conflicts">
          <strong>{plan.conflicts.length} conflict{plan.conflicts.length === 1 ? '' : 's'}</strong> in {plan.target}. Rename them (step 3), leave them out, or choose
          another policy.
          <ul>
            {plan.conflicts.map((c, i) => (
              <li key={i}>
                <code>{c.name}</code>: {c.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {plan.collections.length ? (
        <details>
          <summary>
            What would be written: {plan.collections.length} collection{plan.collections.length === 1 ? '' : 's'}, {counted(plan.collections.reduce((n, c) => n + c.rows, 0), 'row')}
          </summary>
          <TableWrap caption="Collections the restore would write">
            <TableHead columns={['From', 'To', 'Kind', ['Rows', 'num'], ['Size', 'num']]} />
            <tbody>
              {plan.collections.map((c) => (
                <tr key={c.name}>
                  <th scope="row" class="mono">
                    {c.name}
                  </th>
                  <td class="mono">{c.targetName}</td>
                  <td>{c.kind}</td>
                  <td class="num">{count(c.rows)}</td>
                  <td class="num">{bytes(c.logicalBytes)}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        </details>
      ) : null}
    </div>
  );
}
