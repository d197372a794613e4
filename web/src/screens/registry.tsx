/**
 * Sources and Repositories: the names the server knows. Everyone sees them; operators back up a
 * source now and test its connection; admins register and remove.
 */
import { useState } from 'preact/hooks';
import { can, client, describeError } from '../api.js';
import { duration } from '../format.js';
import { JobPanel } from '../job-live.js';
import { useRole } from '../session.js';
import type { SourceCheck } from '../types.js';
import { ActionError, Badge, Dialog, DialogActions, Empty, Equivalents, EquivalentsList, ErrorNote, Field, Loading, PageHeader, TableHead, TableWrap, Time, useAsync } from '../ui.js';

export function SourcesScreen() {
  const role = useRole();
  const list = useAsync(() => client.sources.list(), []);
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<string | undefined>();
  /** Per source: the check's answer, or that it runs, or why the request itself failed. */
  const [checks, setChecks] = useState<Record<string, { answer: SourceCheck } | { pending: true } | { requestError: string }>>({});
  const [started, setStarted] = useState<{ jobId: string; name: string } | undefined>();
  const [actionError, setActionError] = useState<string | undefined>();
  const op = can(role, 'operator');
  const admin = can(role, 'admin');

  const check = (name: string): void => {
    setChecks((c) => ({ ...c, [name]: { pending: true } }));
    client.sources.check(name).then(
      (answer) => setChecks((c) => ({ ...c, [name]: { answer } })),
      (err: unknown) => setChecks((c) => ({ ...c, [name]: { requestError: describeError(err) } })),
    );
  };

  return (
    <>
      <PageHeader title="Sources" subtitle="Databases registered by name: backups, schedules and restores name them. Their passwords never leave the server.">
        {admin ? (
          <button type="button" class="btn btn-primary" onClick={() => setAdding(true)}>
            Register source
          </button>
        ) : null}
      </PageHeader>
      <ErrorNote error={list.error} title="Could not list the sources" />
      <ActionError message={actionError} />
      {started ? <JobPanel jobId={started.jobId} title={`Backup of ${started.name}`} onDismiss={() => setStarted(undefined)} /> : null}
      <div class="card card-flush">
        {list.loading && !list.data ? <Loading /> : null}
        {list.data?.length === 0 ? <Empty>No source is registered yet.</Empty> : null}
        {list.data?.length ? (
          <TableWrap caption="Sources">
            <TableHead columns={['Name', 'Location', 'Registered', op && 'Connection']} actions={op} />
            <tbody>
              {list.data.map((s) => {
                const c = checks[s.name];
                return (
                  <tr key={s.name} data-testid={`source-row-${s.name}`}>
                    <th scope="row">{s.name}</th>
                    <td class="mono wrap">{s.location}</td>
                    <td>
                      <Time iso={s.createdAt} />
                    </td>
                    {op ? (
                      <td aria-live="polite">
                        {!c ? <span class="muted">not tested</span> : 'pending' in c ? <span class="muted">testing…</span> : 'requestError' in c ? <span class="text-bad small">{c.requestError}</span> : <CheckResult c={c.answer} />}
                      </td>
                    ) : null}
                    {op ? (
                      <td>
                        <div class="button-row nowrap-row">
                          <button
                            type="button"
                            class="btn btn-small"
                            onClick={() =>
                              client.backups.create({ source: s.name }).then(
                                (job) => {
                                  setActionError(undefined);
                                  setStarted({ jobId: job.id, name: s.name });
                                },
                                (err: unknown) => setActionError(describeError(err)),
                              )
                            }
                          >
                            Back up now
                          </button>
                          <button type="button" class="btn btn-small" onClick={() => check(s.name)}>
                            Test connection
                          </button>
                          {admin ? (
                            <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRemoving(s.name)} aria-label={`Remove source ${s.name}`}>
                              Remove
                            </button>
                          ) : null}
                        </div>
                      </td>
                    ) : null}
                  </tr>
                );
              })}
            </tbody>
          </TableWrap>
        ) : null}
      </div>
      {list.data?.[0] && op ? (
        <EquivalentsList
          items={[
            { label: `Back up ${list.data[0].name} now`, action: 'backup.create', params: { source: list.data[0].name } },
            { label: `Test the connection of ${list.data[0].name}`, action: 'source.check', params: { name: list.data[0].name } },
          ]}
        />
      ) : null}
      {admin ? (
        <>
          <RegisterDialog kind="source" open={adding} onClose={() => setAdding(false)} onDone={() => { setAdding(false); list.reload(); }} />
          <RemoveDialog kind="source" name={removing} onClose={() => setRemoving(undefined)} onDone={() => { setRemoving(undefined); list.reload(); }} />
        </>
      ) : null}
    </>
  );
}

function CheckResult({ c }: { c: SourceCheck }) {
  return (
    <div class="small">
      <Badge value={c.ok ? 'ok' : 'FAILED'} /> {c.serverVersion ? `${c.kind} ${c.serverVersion}` : c.kind} <span class="muted">({duration(c.durationMs)})</span>
      {c.error ? (
        <div class="text-bad">
          {c.error.code}: {c.error.message}
        </div>
      ) : null}
      {c.tools?.map((t) => (
        <div key={t.name} class={t.ok ? 'muted' : 'text-bad'}>
          {t.name} {t.version}
          {t.message ? `: ${t.message}` : ''}
        </div>
      ))}
    </div>
  );
}

export function RepositoriesScreen() {
  const role = useRole();
  const admin = can(role, 'admin');
  const list = useAsync(() => client.repositories.list(), []);
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<string | undefined>();
  return (
    <>
      <PageHeader title="Repositories" subtitle={<>Where backups are stored. <code>default</code> is the server's own (its BACKUP_* settings); others are registered by name.</>}>
        {admin ? (
          <button type="button" class="btn btn-primary" onClick={() => setAdding(true)}>
            Register repository
          </button>
        ) : null}
      </PageHeader>
      <ErrorNote error={list.error} title="Could not list the repositories" />
      <div class="card card-flush">
        {list.loading && !list.data ? <Loading /> : null}
        {list.data ? (
          <TableWrap caption="Repositories">
            <TableHead columns={['Name', 'Location', 'Encryption', 'Registered']} actions={admin} />
            <tbody>
              <tr>
                <th scope="row">default</th>
                <td class="muted">the server's BACKUP_* repository</td>
                <td>—</td>
                <td>—</td>
                {admin ? <td /> : null}
              </tr>
              {list.data.map((r) => (
                <tr key={r.name}>
                  <th scope="row">
                    <a href={`#/backups?repository=${encodeURIComponent(r.name)}`}>{r.name}</a>
                  </th>
                  <td class="mono wrap">{r.location}</td>
                  <td>{r.passwordSource ? <Badge value={`password ${r.passwordSource}`} /> : <span class="muted">none</span>}</td>
                  <td>
                    <Time iso={r.createdAt} />
                  </td>
                  {admin ? (
                    <td>
                      <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRemoving(r.name)} aria-label={`Remove repository ${r.name}`}>
                        Remove
                      </button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : null}
      </div>
      {admin ? (
        <>
          <RegisterDialog kind="repository" open={adding} onClose={() => setAdding(false)} onDone={() => { setAdding(false); list.reload(); }} />
          <RemoveDialog kind="repository" name={removing} onClose={() => setRemoving(undefined)} onDone={() => { setRemoving(undefined); list.reload(); }} />
        </>
      ) : null}
    </>
  );
}

function RegisterDialog({ kind, open, onClose, onDone }: { kind: 'source' | 'repository'; open: boolean; onClose: () => void; onDone: () => void }) {
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [pwKind, setPwKind] = useState<'none' | 'file' | 'command'>('none');
  const [pw, setPw] = useState('');
  const [error, setError] = useState<string | undefined>();
  const password = kind === 'repository' && pwKind !== 'none' && pw.trim() ? (pwKind === 'file' ? { passwordFile: pw.trim() } : { passwordCommand: pw.trim() }) : {};
  return (
    <Dialog open={open} title={kind === 'source' ? 'Register a source' : 'Register a repository'} onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            if (kind === 'source') await client.sources.add(name.trim(), url.trim());
            else await client.repositories.add(name.trim(), url.trim(), password);
            setName('');
            setUrl('');
            setPw('');
            setError(undefined);
            onDone();
          } catch (err) {
            setError(describeError(err));
          }
        }}
      >
        <Field id={`reg-${kind}-name`} label="Name" hint="lowercase letters, digits, - and _">
          <input id={`reg-${kind}-name`} value={name} required onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} aria-describedby={`reg-${kind}-name-hint`} />
        </Field>
        <Field
          id={`reg-${kind}-url`}
          label="URL"
          hint={kind === 'source' ? 'postgres://user:password@host/db, mysql://…, sqlite:///path/file.db — a password in it is kept by the server, never shown again' : 'An initialised repository: /path, file:///path, s3://bucket/prefix…'}
        >
          <input id={`reg-${kind}-url`} class="mono" type={kind === 'source' ? 'password' : 'text'} autoComplete="off" value={url} required onInput={(e) => setUrl((e.currentTarget as HTMLInputElement).value)} aria-describedby={`reg-${kind}-url-hint`} />
        </Field>
        {kind === 'repository' ? (
          <fieldset>
            <legend>Encrypted repository: where the server reads its password</legend>
            <div class="button-row">
              {(['none', 'file', 'command'] as const).map((k) => (
                <label class="check" key={k}>
                  <input type="radio" name="pwkind" checked={pwKind === k} onChange={() => setPwKind(k)} />
                  {k === 'none' ? 'Not encrypted' : k === 'file' ? 'Password file' : 'Password command'}
                </label>
              ))}
            </div>
            {pwKind !== 'none' ? (
              <Field id="reg-pw" label={pwKind === 'file' ? 'Password file (absolute path on the server)' : 'Command (sh -c, on the server)'}>
                <input id="reg-pw" class="mono" value={pw} onInput={(e) => setPw((e.currentTarget as HTMLInputElement).value)} />
              </Field>
            ) : null}
          </fieldset>
        ) : null}
        <ActionError message={error} />
        <DialogActions label="Register" onCancel={onClose} />
        {kind === 'source' ? (
          <Equivalents action="source.add" params={{ name: name.trim() || 'NAME', url: url.trim() ? redactUrl(url.trim()) : 'URL' }} />
        ) : (
          <Equivalents action="repository.add" params={{ name: name.trim() || 'NAME', url: url.trim() || 'URL', ...password }} />
        )}
      </form>
    </Dialog>
  );
}

/** A URL with its password replaced, for the equivalents shown on screen. */
function redactUrl(url: string): string {
  return url.replace(/^([a-z0-9+.-]+:\/\/[^:/@]*):[^@/]*@/i, '$1:****@');
}

function RemoveDialog({ kind, name, onClose, onDone }: { kind: 'source' | 'repository'; name: string | undefined; onClose: () => void; onDone: () => void }) {
  const [force, setForce] = useState(false);
  const [error, setError] = useState<string | undefined>();
  return (
    <Dialog open={name !== undefined} title={`Remove ${kind} ${name ?? ''}?`} onClose={onClose}>
      <p>
        The server forgets the name; {kind === 'source' ? 'the backups of this source are kept' : 'the repository and its backups are untouched'}. Enabled schedules that use it make
        this fail, unless you disable them.
      </p>
      <label class="check">
        <input type="checkbox" checked={force} onChange={(e) => setForce((e.currentTarget as HTMLInputElement).checked)} />
        Disable the schedules that use it
      </label>
      <ActionError message={error} />
      <DialogActions
        label="Remove"
        danger
        onConfirm={async () => {
          try {
            if (kind === 'source') await client.sources.remove(name!, force ? { force: true } : {});
            else await client.repositories.remove(name!, force ? { force: true } : {});
            setError(undefined);
            onDone();
          } catch (err) {
            setError(describeError(err));
          }
        }}
        onCancel={onClose}
      />
      {name ? kind === 'source' ? <Equivalents action="source.remove" params={{ name, force }} /> : <Equivalents action="repository.remove" params={{ name, force }} /> : null}
    </Dialog>
  );
}
