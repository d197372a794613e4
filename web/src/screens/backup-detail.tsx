/**
 * One backup: its facts and collections; an operator edits its expiry, deletes it (the dialog
 * shows what a prune would then free), copies it to another repository, exports it to a
 * downloadable .cairn archive, or starts a restore of it.
 */
import { useState } from 'preact/hooks';
import { can, client, describeError } from '../api.js';
import { bytes, count, counted, duration } from '../format.js';
import { JobPanel } from '../job-live.js';
import { go, href } from '../router.js';
import { useRole } from '../session.js';
import type { BackupDetail, BackupInProgress } from '../../../src/sdk/index.js';
import type { DeletionPreview, JobRecord } from '../types.js';
import { ActionError, Badge, Dialog, DialogActions, Equivalents, ErrorNote, Field, Loading, PageHeader, SelectField, TableHead, TableWrap, Time, useAsync } from '../ui.js';

export function BackupDetailScreen({ id, repository }: { id: string; repository?: string }) {
  const role = useRole();
  const backup = useAsync(() => client.backups.get(id, repository ? { repository } : {}), [id, repository]);
  const b = backup.data;
  const complete = b && !('jobId' in b) ? (b as BackupDetail) : undefined;
  return (
    <>
      <p class="crumbs">
        <a href={href('backups', { repository })}>Backups</a> <span aria-hidden="true">/</span>
      </p>
      <PageHeader title={id} subtitle={repository ? `in repository ${repository}` : 'in the default repository'}>
        {complete && can(role, 'operator') ? (
          <a class="btn btn-primary" href={href('restore', { backup: id, repository })}>
            Restore…
          </a>
        ) : null}
      </PageHeader>
      <ErrorNote error={backup.error} title="Could not load the backup" />
      {backup.loading && !b ? <Loading /> : null}
      {complete ? <Complete b={complete} repository={repository} reload={backup.reload} /> : b ? <Unfinished b={b as BackupInProgress} /> : null}
    </>
  );
}

function Unfinished({ b }: { b: BackupInProgress }) {
  return (
    <>
      <JobPanel jobId={b.jobId} title={`Backup of ${b.source.location}`} />
    </>
  );
}

function Complete({ b, repository, reload }: { b: BackupDetail; repository?: string; reload: () => void }) {
  const role = useRole();
  const op = can(role, 'operator');
  const repoOpt = repository ? { repository } : {};
  return (
    <>
      <section class="card" aria-labelledby="facts-title">
        <h2 id="facts-title" class="card-title">
          Summary
        </h2>
        <dl class="facts facts-grid">
          <div>
            <dt>Source</dt>
            <dd>
              {b.source.name} <span class="muted">({b.source.kind} {b.source.serverVersion})</span>
              <div class="mono small wrap">{b.source.location}</div>
            </dd>
          </div>
          <div>
            <dt>Type</dt>
            <dd>
              <Badge value={b.type} />
              {b.schedule ? (
                <>
                  {' '}
                  by <a href={href('schedules')}>{b.schedule}</a>
                </>
              ) : null}
            </dd>
          </div>
          <div>
            <dt>Snapshot taken</dt>
            <dd>
              <Time iso={b.createdAt} rel />
            </dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd>{duration(Date.parse(b.completedAt) - Date.parse(b.createdAt))}</dd>
          </div>
          <div>
            <dt>Expires</dt>
            <dd>{b.expiresAt ? <Time iso={b.expiresAt} rel /> : 'never'}</dd>
          </div>
          <div>
            <dt>Size</dt>
            <dd>
              {bytes(b.totals.logicalBytes)} logical · {bytes(b.totals.newBytes)} new · {bytes(b.totals.storedBytes)} stored
            </dd>
          </div>
          <div>
            <dt>Contents</dt>
            <dd>
              {counted(b.totals.collections, 'collection')} · {counted(b.totals.rows, 'row')}
            </dd>
          </div>
          <div>
            <dt>Compression</dt>
            <dd>
              {b.compression.algorithm} {'level' in b.compression ? String((b.compression as { level?: unknown }).level ?? '') : ''}
            </dd>
          </div>
        </dl>
        {b.warnings.length ? (
          <div class="note note-warn">
            <strong>Warnings:</strong>
            <ul>
              {b.warnings.map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          </div>
        ) : null}
      </section>

      {op ? <Actions b={b} repository={repository} reload={reload} repoOpt={repoOpt} /> : null}

      <section class="card card-flush" aria-labelledby="coll-title">
        <h2 id="coll-title" class="card-title card-pad">
          Collections ({b.collections.length})
        </h2>
        <TableWrap caption={`Collections of ${b.id}`}>
          <TableHead columns={['Name', 'Kind', ['Rows', 'num'], ['Size', 'num'], ['Stored', 'num'], ['Chunks', 'num']]} />
          <tbody>
            {b.collections.map((c) => (
              <tr key={c.name}>
                <th scope="row" class="mono">
                  {c.name}
                  {c.damage ? <span class="badge tone-bad"> damaged</span> : null}
                </th>
                <td>{c.kind}</td>
                <td class="num">{count(c.rowCount)}</td>
                <td class="num">{bytes(c.logicalBytes)}</td>
                <td class="num">{bytes(c.storedBytes)}</td>
                <td class="num">{count(c.chunks)}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      </section>
    </>
  );
}

function Actions({ b, repository, reload, repoOpt }: { b: BackupDetail; repository?: string; reload: () => void; repoOpt: { repository?: string } }) {
  const [dialog, setDialog] = useState<'expiry' | 'delete' | 'copy' | 'export' | undefined>();
  const close = (): void => setDialog(undefined);
  const [job, setJob] = useState<{ id: string; title: string; kind: 'copy' | 'export' } | undefined>();
  const [exported, setExported] = useState<JobRecord | undefined>();
  return (
    <section class="card" aria-labelledby="actions-title">
      <h2 id="actions-title" class="card-title">
        Actions
      </h2>
      <div class="button-row">
        <button type="button" class="btn" onClick={() => setDialog('expiry')}>
          Edit expiry
        </button>
        <button type="button" class="btn" onClick={() => setDialog('copy')}>
          Copy to repository…
        </button>
        <button type="button" class="btn" onClick={() => setDialog('export')}>
          Export archive
        </button>
        <button type="button" class="btn btn-danger-outline" data-testid="delete-backup" onClick={() => setDialog('delete')}>
          Delete
        </button>
      </div>
      {job ? (
        <JobPanel
          jobId={job.id}
          title={job.title}
          onEnd={(j) => {
            if (job.kind === 'export' && j.state === 'SUCCESS') setExported(j);
          }}
          onDismiss={() => setJob(undefined)}
        />
      ) : null}
      {exported ? (
        <p class="note note-ok">
          The archive is ready:{' '}
          <a href={`/v1/exports/${encodeURIComponent(exported.id)}/file`} download={`${b.id}.cairn`}>
            download {b.id}.cairn
          </a>
          {typeof exported.result?.bytes === 'number' ? ` (${bytes(exported.result.bytes)})` : ''}
          <Equivalents action="export.download" params={{ jobId: exported.id }} />
        </p>
      ) : null}

      <ExpiryDialog open={dialog === 'expiry'} onClose={close} b={b} repoOpt={repoOpt} onDone={reload} />
      <DeleteDialog open={dialog === 'delete'} onClose={close} b={b} repository={repository} />
      <CopyDialog open={dialog === 'copy'} onClose={close} b={b} repository={repository} onStarted={(id, to) => { close(); setJob({ id, title: `Copy to ${to}`, kind: 'copy' }); }} />
      <ExportDialog open={dialog === 'export'} onClose={close} b={b} repository={repository} onStarted={(id) => { close(); setExported(undefined); setJob({ id, title: 'Export archive', kind: 'export' }); }} />
    </section>
  );
}

function ExpiryDialog({ open, onClose, b, repoOpt, onDone }: { open: boolean; onClose: () => void; b: BackupDetail; repoOpt: { repository?: string }; onDone: () => void }) {
  const [expires, setExpires] = useState('30d');
  const [error, setError] = useState<string | undefined>();
  return (
    <Dialog open={open} title="Edit expiry" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await client.backups.setExpiry(b.id, expires.trim(), repoOpt);
            onClose();
            onDone();
          } catch (err) {
            setError(describeError(err));
          }
        }}
      >
        <p>
          Now: {b.expiresAt ? <Time iso={b.expiresAt} rel /> : 'never expires'}. Expired backups are deleted by <code>cairn backup expire</code> and
          scheduled runs.
        </p>
        <Field id="exp-value" label="Expires" hint='A duration from now (30d, 6mo), a date (2027-01-31) or "never".'>
          <input id="exp-value" value={expires} onInput={(e) => setExpires((e.currentTarget as HTMLInputElement).value)} required aria-describedby="exp-value-hint" />
        </Field>
        <ActionError message={error} />
        <DialogActions label="Save expiry" onCancel={onClose} />
        <Equivalents action="backup.setExpiry" params={{ id: b.id, expires: expires.trim() || 'never', ...repoOpt }} />
      </form>
    </Dialog>
  );
}

function DeleteDialog({ open, onClose, b, repository }: { open: boolean; onClose: () => void; b: BackupDetail; repository?: string }) {
  const preview = useAsync(
    (): Promise<DeletionPreview | undefined> => (open ? client.backups.deletionPreview(b.id, repository ? { repository } : {}) : Promise.resolve(undefined)),
    [open, b.id, repository],
  );
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  return (
    <Dialog open={open} title={`Delete ${b.id}?`} onClose={onClose}>
      <p>
        The backup's manifest is deleted at once; the space its data uses comes back with the next <strong>prune</strong> of the repository. This
        cannot be undone.
      </p>
      {preview.loading ? <Loading label="Working out what a prune would free…" /> : null}
      {preview.data ? (
        <div class="note note-info" data-testid="deletion-preview">
          A prune after deleting it frees about <strong>{bytes(preview.data.uniqueStoredBytes)}</strong> ({count(preview.data.uniqueChunks)} of{' '}
          {count(preview.data.totalChunks)} chunks are used by no other backup; {count(preview.data.sharedChunks)} are shared and stay).
        </div>
      ) : null}
      <ErrorNote error={preview.error} title="No deletion preview" />
      <ActionError message={error} />
      <DialogActions
        label="Delete backup"
        danger
        disabled={busy}
        onConfirm={async () => {
          setBusy(true);
          try {
            await client.backups.delete(b.id, repository ? { repository } : {});
            onClose();
            go('backups', { repository });
          } catch (err) {
            setError(describeError(err));
          } finally {
            setBusy(false);
          }
        }}
        onCancel={onClose}
        cancelLabel="Keep it"
      />
      <Equivalents action="backup.delete" params={{ id: b.id, ...(repository ? { repository } : {}) }} />
    </Dialog>
  );
}

function CopyDialog({ open, onClose, b, repository, onStarted }: { open: boolean; onClose: () => void; b: BackupDetail; repository?: string; onStarted: (jobId: string, to: string) => void }) {
  const repos = useAsync(() => (open ? client.repositories.list() : Promise.resolve([])), [open]);
  const from = repository ?? 'default';
  const choices = ['default', ...(repos.data ?? []).map((r) => r.name)].filter((n) => n !== from);
  const [to, setTo] = useState('');
  const target = to || choices[0] || '';
  const [error, setError] = useState<string | undefined>();
  return (
    <Dialog open={open} title="Copy to another repository" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const job = await client.copies.create({ backup: b.id, from, to: target });
            onStarted(job.id, target);
          } catch (err) {
            setError(describeError(err));
          }
        }}
      >
        <p>Only the chunks the other repository lacks are sent; the copy is verified before its manifest is written.</p>
        {choices.length === 0 && !repos.loading ? <p class="note note-info">No other repository is registered.</p> : null}
        <SelectField id="copy-to" label="Copy to" value={target} values={choices} required onChange={setTo} />
        <ActionError message={error} />
        <DialogActions label="Start copy" disabled={!target} onCancel={onClose} />
        {target ? <Equivalents action="copy.create" params={{ backup: b.id, from, to: target }} /> : null}
      </form>
    </Dialog>
  );
}

function ExportDialog({ open, onClose, b, repository, onStarted }: { open: boolean; onClose: () => void; b: BackupDetail; repository?: string; onStarted: (jobId: string) => void }) {
  const [error, setError] = useState<string | undefined>();
  const params = { backups: [b.id], ...(repository ? { repository } : {}) };
  return (
    <Dialog open={open} title="Export to an archive" onClose={onClose}>
      <p>
        The server writes <code>{b.id}.cairn</code> (the backup and every chunk it needs, self-contained); once the job ends a download link appears.
        Import it elsewhere with <code>cairn import</code>.
      </p>
      <ActionError message={error} />
      <DialogActions
        label="Start export"
        onConfirm={async () => {
          try {
            const job = await client.exports.create(params);
            onStarted(job.id);
          } catch (err) {
            setError(describeError(err));
          }
        }}
        onCancel={onClose}
      />
      <Equivalents action="export.create" params={params} />
    </Dialog>
  );
}
