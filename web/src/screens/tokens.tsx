/** Tokens (admin): list, create (the secret shown once, with a copy button), revoke. */
import { useState } from 'preact/hooks';
import { client, describeError, settle } from '../api.js';
import { useSession } from '../session.js';
import { ActionError, Badge, CopyButton, Dialog, DialogActions, Equivalents, ErrorNote, Field, Loading, PageHeader, TableHead, TableWrap, Time, useAsync } from '../ui.js';

type Role = 'admin' | 'operator' | 'viewer';

export function TokensScreen() {
  const session = useSession();
  const list = useAsync(() => client.tokens.list(), []);
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<string | undefined>();
  const [created, setCreated] = useState<{ secret: string; name: string; role: string } | undefined>();
  const [error, setError] = useState<string | undefined>();
  return (
    <>
      <PageHeader title="Tokens" subtitle="API tokens for scripts, the CLI and this console. Only their hashes are stored.">
        <button type="button" class="btn btn-primary" onClick={() => setCreating(true)}>
          New token
        </button>
      </PageHeader>
      {created ? (
        <section class="card note-ok-card" aria-labelledby="secret-title">
          <h2 id="secret-title" class="card-title">
            Token created: copy it now
          </h2>
          <p>
            This is the only time the secret of <strong>{created.name || 'the new token'}</strong> ({created.role}) is shown.
          </p>
          <div class="secret">
            <code data-testid="token-secret">{created.secret}</code>
            <CopyButton text={created.secret} />
          </div>
          <button type="button" class="btn btn-small mt" onClick={() => setCreated(undefined)}>
            Done, hide it
          </button>
        </section>
      ) : null}
      <ErrorNote error={list.error} title="Could not list the tokens" />
      <ActionError message={error} />
      <div class="card card-flush">
        {list.loading && !list.data ? <Loading /> : null}
        {list.data ? (
          <TableWrap caption="Tokens">
            <TableHead columns={['Name', 'Id', 'Role', 'Created']} actions />
            <tbody>
              {list.data.map((t) => (
                <tr key={t.id}>
                  <th scope="row">
                    {t.name || <span class="muted">(no name)</span>}
                    {t.id === session.tokenId ? <span class="muted small"> · this session</span> : null}
                  </th>
                  <td class="mono">{t.id}</td>
                  <td>
                    <Badge value={t.role} />
                  </td>
                  <td>
                    <Time iso={t.createdAt} />
                  </td>
                  <td>
                    <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRevoking(t.id)} aria-label={`Revoke token ${t.name || t.id}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : null}
      </div>
      <CreateTokenDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(c) => {
          setCreating(false);
          setCreated(c);
          list.reload();
        }}
      />
      <Dialog open={revoking !== undefined} title="Revoke this token?" onClose={() => setRevoking(undefined)}>
        <p>
          Token <code>{revoking}</code> stops working at once, and every console session signed in with it ends.
          {revoking === session.tokenId ? <strong> It is the token of this session: you will be signed out.</strong> : null}
        </p>
        <DialogActions
          label="Revoke token"
          danger
          onConfirm={() => {
            const id = revoking!;
            setRevoking(undefined);
            settle(client.tokens.revoke(id), list.reload, setError);
          }}
          onCancel={() => setRevoking(undefined)}
        />
        {revoking ? <Equivalents action="token.revoke" params={{ id: revoking }} /> : null}
      </Dialog>
    </>
  );
}

function CreateTokenDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (c: { secret: string; name: string; role: string }) => void }) {
  const [role, setRole] = useState<Role>('viewer');
  const [name, setName] = useState('');
  const [error, setError] = useState<string | undefined>();
  return (
    <Dialog open={open} title="New token" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const answer = await client.tokens.create({ role, ...(name.trim() ? { name: name.trim() } : {}) });
            setName('');
            setError(undefined);
            onCreated({ secret: answer.secret, name: answer.token.name, role: answer.token.role });
          } catch (err) {
            setError(describeError(err));
          }
        }}
      >
        <Field id="tok-name" label="Name" hint="a label to recognise it by, e.g. ci-backups">
          <input id="tok-name" value={name} maxLength={63} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} aria-describedby="tok-name-hint" />
        </Field>
        <Field id="tok-role" label="Role">
          <select id="tok-role" value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value as Role)}>
            <option value="viewer">viewer: reads only</option>
            <option value="operator">operator: backs up, restores, cancels, schedules</option>
            <option value="admin">admin: everything, sources, repositories and tokens too</option>
          </select>
        </Field>
        <ActionError message={error} />
        <DialogActions label="Create token" onCancel={onClose} />
        <Equivalents action="token.create" params={{ role, ...(name.trim() ? { name: name.trim() } : {}) }} />
      </form>
    </Dialog>
  );
}
