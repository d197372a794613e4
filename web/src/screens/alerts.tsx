/**
 * Alerts (admin): notification channels (webhook, Slack, ntfy, email), the rules that send events
 * to them, and the deliveries (GET /v1/alert-deliveries). A channel's secret (HMAC key, Slack URL,
 * ntfy token, SMTP password) is typed into a password field, sent once and never shown back: the
 * listing says only whether one is set. Testing a channel sends a sample now and shows the outcome.
 */
import { useState } from 'preact/hooks';
import { client, describeError, settle } from '../api.js';
import type { AlertChannelParams } from '../equivalents.js';
import { go } from '../router.js';
import type { AlertChannel, AlertDelivery } from '../types.js';
import { ActionError, Badge, Dialog, DialogActions, Empty, Equivalents, EquivalentsList, ErrorNote, Field, Loading, PageHeader, SelectField, TableHead, TableWrap, Time, useAsync } from '../ui.js';

const TYPES = ['webhook', 'slack', 'ntfy', 'email'] as const;
type ChannelType = (typeof TYPES)[number];
const KINDS = ['failure', 'success', 'recovery', 'rpo', 'stuck'] as const;
const KIND_TEXT: Record<(typeof KINDS)[number], string> = {
  failure: 'failure: a job failed, or a scheduled run could not start',
  success: 'success: a job succeeded',
  recovery: 'recovery: the first success after failures',
  rpo: 'rpo: a source missed its recovery point objective',
  stuck: 'stuck: a running job stopped making progress',
};
const STATES = ['pending', 'delivered', 'failed'] as const;
type DeliveryState = (typeof STATES)[number];
const LIMIT = 50;

export function AlertsScreen({ query }: { query: URLSearchParams }) {
  const channels = useAsync(() => client.alerts.listChannels(), []);
  const rules = useAsync(() => client.alerts.listRules(), []);
  const stateParam = query.get('state') ?? '';
  const state = (STATES as readonly string[]).includes(stateParam) ? (stateParam as DeliveryState) : undefined;
  const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
  const deliveries = useAsync(() => client.alerts.deliveries({ ...(state ? { state } : {}), limit: LIMIT, offset }), [state, offset]);
  const [adding, setAdding] = useState(false);
  const [addingRule, setAddingRule] = useState(false);
  const [removing, setRemoving] = useState<string | undefined>();
  const [removingRule, setRemovingRule] = useState<string | undefined>();
  /** Per channel: the test's delivery, or that it runs, or why the request itself failed. */
  const [tests, setTests] = useState<Record<string, { delivery: AlertDelivery } | { pending: true } | { requestError: string }>>({});
  const [actionError, setActionError] = useState<string | undefined>();

  const test = (name: string): void => {
    setTests((t) => ({ ...t, [name]: { pending: true } }));
    client.alerts.testChannel(name).then(
      (delivery) => {
        setTests((t) => ({ ...t, [name]: { delivery } }));
        deliveries.reload();
      },
      (err: unknown) => setTests((t) => ({ ...t, [name]: { requestError: describeError(err) } })),
    );
  };
  const setFilter = (changes: Record<string, string | number | undefined>): void => go('alerts', { state, offset: offset || undefined, ...changes });
  const first = channels.data?.[0];
  const total = deliveries.data?.total;

  return (
    <>
      <PageHeader title="Alerts" subtitle="Where this server tells people about failures, recoveries, missed objectives and stuck jobs. Secrets are stored by the server and never shown again.">
        <button type="button" class="btn btn-primary" onClick={() => setAdding(true)}>
          Add channel
        </button>
        <button type="button" class="btn" onClick={() => setAddingRule(true)} disabled={!channels.data?.length}>
          Add rule
        </button>
      </PageHeader>
      <ActionError message={actionError} />

      <h2 class="section-title">Channels</h2>
      <ErrorNote error={channels.error} title="Could not list the channels" />
      <div class="card card-flush">
        {channels.loading && !channels.data ? <Loading /> : null}
        {channels.data?.length === 0 ? <Empty>No channel yet: add one, then test it.</Empty> : null}
        {channels.data?.length ? (
          <TableWrap caption="Channels">
            <TableHead columns={['Name', 'Type', 'Target', 'Secret', 'Created', 'Test']} actions />
            <tbody>
              {channels.data.map((c) => {
                const t = tests[c.name];
                return (
                  <tr key={c.name} data-testid={`channel-row-${c.name}`}>
                    <th scope="row">{c.name}</th>
                    <td>
                      <Badge value={c.type} />
                    </td>
                    <td class="mono wrap">
                      {c.target}
                      <ChannelSettings c={c} />
                    </td>
                    <td>{c.secretSet ? <Badge value="set" /> : <span class="muted">none</span>}</td>
                    <td>
                      <Time iso={c.createdAt} />
                    </td>
                    <td aria-live="polite" data-testid={`channel-test-${c.name}`}>
                      {!t ? (
                        <span class="muted">not tested</span>
                      ) : 'pending' in t ? (
                        <span class="muted">sending…</span>
                      ) : 'requestError' in t ? (
                        <span class="text-bad small">{t.requestError}</span>
                      ) : (
                        <div class="small">
                          <Badge value={t.delivery.state} />
                          {t.delivery.lastError ? <div class="text-bad">{t.delivery.lastError}</div> : null}
                        </div>
                      )}
                    </td>
                    <td>
                      <div class="button-row nowrap-row">
                        <button type="button" class="btn btn-small" onClick={() => test(c.name)} aria-label={`Test channel ${c.name}`}>
                          Test
                        </button>
                        <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRemoving(c.name)} aria-label={`Remove channel ${c.name}`}>
                          Remove
                        </button>
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </TableWrap>
        ) : null}
      </div>
      {first ? (
        <EquivalentsList
          items={[
            { label: `Test channel ${first.name}`, action: 'alert.channelTest', params: { name: first.name } },
            { label: `Remove channel ${first.name}`, action: 'alert.channelRemove', params: { name: first.name } },
          ]}
        />
      ) : null}

      <h2 class="section-title">Rules</h2>
      <ErrorNote error={rules.error} title="Could not list the rules" />
      <div class="card card-flush">
        {rules.loading && !rules.data ? <Loading /> : null}
        {rules.data?.length === 0 ? <Empty>No rules: every channel gets the failures of anything.</Empty> : null}
        {rules.data?.length ? (
          <TableWrap caption="Rules">
            <TableHead columns={['Id', 'Channel', 'On', 'Source', 'Schedule', 'Created']} actions />
            <tbody>
              {rules.data.map((r) => (
                <tr key={r.id} data-testid={`rule-row-${r.id}`}>
                  <th scope="row" class="mono">
                    {r.id}
                  </th>
                  <td>{r.channel}</td>
                  <td>{r.on.join(', ')}</td>
                  <td>{r.source ?? <span class="muted">any</span>}</td>
                  <td>{r.schedule ?? <span class="muted">any</span>}</td>
                  <td>
                    <Time iso={r.createdAt} />
                  </td>
                  <td>
                    <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRemovingRule(r.id)} aria-label={`Remove rule ${r.id}`}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : null}
      </div>
      {rules.data?.[0] ? <Equivalents action="alert.ruleRemove" params={{ id: rules.data[0].id }} /> : null}

      <h2 class="section-title">Deliveries</h2>
      <form class="card filters" aria-label="Filter deliveries" onSubmit={(e) => e.preventDefault()}>
        <SelectField id="d-state" label="State" value={state ?? ''} blank="Any state" values={STATES} onChange={(v) => setFilter({ state: v || undefined, offset: undefined })} />
        <button type="button" class="btn field-button" onClick={() => deliveries.reload()}>
          Refresh
        </button>
      </form>
      <ErrorNote error={deliveries.error} title="Could not list the deliveries" />
      <div class="card card-flush">
        {deliveries.loading && !deliveries.data ? <Loading /> : null}
        {deliveries.data?.deliveries.length === 0 ? <Empty>No deliveries{state ? ` ${state}` : ' yet'}.</Empty> : null}
        {deliveries.data?.deliveries.length ? (
          <TableWrap caption="Deliveries, newest first" stack>
            <TableHead columns={['Event', 'Channel', 'State', ['Attempts', 'num'], 'At', 'Delivered', 'Last error']} />
            <tbody>
              {deliveries.data.deliveries.map((d) => (
                <tr key={d.id} data-testid={`delivery-row-${d.id}`}>
                  <th scope="row">
                    <Badge value={d.kind} /> <span class="small">{d.title}</span>
                  </th>
                  <td data-label="Channel">{d.channel}</td>
                  <td data-label="State">
                    <Badge value={d.state} />
                  </td>
                  <td data-label="Attempts" class="num">
                    {d.attempts}
                  </td>
                  <td data-label="At">
                    <Time iso={d.at} />
                  </td>
                  <td data-label="Delivered">
                    <Time iso={d.deliveredAt} />
                  </td>
                  <td data-label="Last error" class="cell-error">
                    {d.lastError ? <span class="small text-bad">{d.lastError}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : null}
        {total !== undefined && total > LIMIT ? (
          <nav class="pager" aria-label="Pages of deliveries">
            <span>
              {offset + 1}–{Math.min(total, offset + LIMIT)} of {total}
            </span>
            <button type="button" class="btn btn-small" disabled={offset === 0} onClick={() => setFilter({ offset: Math.max(0, offset - LIMIT) || undefined })}>
              Previous
            </button>
            <button type="button" class="btn btn-small" disabled={offset + LIMIT >= total} onClick={() => setFilter({ offset: offset + LIMIT })}>
              Next
            </button>
          </nav>
        ) : null}
      </div>
      <Equivalents action="alert.deliveries" params={{ ...(state ? { state } : {}), limit: LIMIT }} />

      <AddChannelDialog
        open={adding}
        onClose={() => setAdding(false)}
        onDone={() => {
          setAdding(false);
          channels.reload();
        }}
      />
      <AddRuleDialog
        open={addingRule}
        channels={channels.data ?? []}
        onClose={() => setAddingRule(false)}
        onDone={() => {
          setAddingRule(false);
          rules.reload();
        }}
      />
      <Dialog open={removing !== undefined} title={`Remove channel ${removing ?? ''}?`} onClose={() => setRemoving(undefined)}>
        <p>The channel and its rules are removed, its secret with them; its deliveries stay on record.</p>
        <DialogActions
          label="Remove"
          danger
          onConfirm={() => {
            const name = removing!;
            setRemoving(undefined);
            settle(
              client.alerts.removeChannel(name),
              () => {
                channels.reload();
                rules.reload();
              },
              setActionError,
            );
          }}
          onCancel={() => setRemoving(undefined)}
        />
        {removing ? <Equivalents action="alert.channelRemove" params={{ name: removing }} /> : null}
      </Dialog>
      <Dialog open={removingRule !== undefined} title={`Remove rule ${removingRule ?? ''}?`} onClose={() => setRemovingRule(undefined)}>
        <p>Its channel stops getting these events (a channel left without rules gets the failures of anything).</p>
        <DialogActions
          label="Remove"
          danger
          onConfirm={() => {
            const id = removingRule!;
            setRemovingRule(undefined);
            settle(client.alerts.removeRule(id), rules.reload, setActionError);
          }}
          onCancel={() => setRemovingRule(undefined)}
        />
        {removingRule ? <Equivalents action="alert.ruleRemove" params={{ id: removingRule }} /> : null}
      </Dialog>
    </>
  );
}

/** The settings a channel shows besides its target (never a secret: the server leaves them out). */
function ChannelSettings({ c }: { c: AlertChannel }) {
  const entries = Object.entries(c.settings).filter(([k]) => k !== 'to' && k !== 'host' && k !== 'port');
  if (!entries.length) return null;
  return <div class="small muted">{entries.map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(', ') : String(v)}`).join(' · ')}</div>;
}

/** Form fields of a channel being added; the secret is kept apart from what the equivalents see. */
interface Draft {
  name: string;
  type: ChannelType;
  url: string;
  topic: string;
  host: string;
  port: string;
  security: 'tls' | 'starttls' | 'none';
  user: string;
  from: string;
  to: string;
}
const EMPTY: Draft = { name: '', type: 'webhook', url: '', topic: '', host: '', port: '', security: 'starttls', user: '', from: '', to: '' };

/** The secret field of each type: its label and hint. */
const SECRET_FIELD: Record<ChannelType, { label: string; hint: string; required: boolean }> = {
  webhook: { label: 'HMAC secret', hint: 'signs X-Cairn-Signature; 16 characters or more, e.g. openssl rand -hex 32', required: true },
  slack: { label: 'Incoming-webhook URL', hint: 'Slack, Mattermost, Rocket.Chat…: the URL is the secret (whoever has it may post)', required: true },
  ntfy: { label: 'Access token', hint: 'optional: for a protected topic (sent as Authorization: Bearer)', required: false },
  email: { label: 'SMTP password', hint: 'optional: with the SMTP user', required: false },
};

/** What the equivalents show of a draft: no secret, only whether one is given. */
function paramsOf(d: Draft, secretGiven: boolean): AlertChannelParams {
  const trim = (v: string): string | undefined => v.trim() || undefined;
  const to = d.to.split(/[\s,]+/).filter(Boolean);
  const base = { name: d.name.trim() || 'NAME', type: d.type, secretGiven };
  switch (d.type) {
    case 'webhook':
      return { ...base, url: trim(d.url) ?? 'URL' };
    case 'slack':
      return base;
    case 'ntfy':
      return { ...base, url: trim(d.url), topic: trim(d.topic) ?? 'TOPIC' };
    case 'email':
      return {
        ...base, host: trim(d.host) ?? 'HOST', port: d.port.trim() ? Number(d.port) : undefined, security: d.security, user: trim(d.user), from: trim(d.from) ?? 'FROM', to: to.length ? to : ['TO'],
      };
  }
}

function AddChannelDialog({ open, onClose, onDone }: { open: boolean; onClose: () => void; onDone: () => void }) {
  const [d, setD] = useState<Draft>(EMPTY);
  const [secret, setSecret] = useState('');
  const [error, setError] = useState<string | undefined>();
  const set = (changes: Partial<Draft>): void => setD((x) => ({ ...x, ...changes }));
  const input = (id: string, label: string, key: Exclude<keyof Draft, 'type' | 'security'>, opts: { hint?: string; required?: boolean; type?: string; placeholder?: string } = {}) => (
    <Field id={id} label={label} hint={opts.hint}>
      <input
        id={id}
        type={opts.type ?? 'text'}
        value={d[key]}
        required={opts.required}
        placeholder={opts.placeholder}
        autoComplete="off"
        spellcheck={false}
        onInput={(e) => set({ [key]: (e.currentTarget as HTMLInputElement).value })}
        aria-describedby={opts.hint ? `${id}-hint` : undefined}
      />
    </Field>
  );
  const sf = SECRET_FIELD[d.type];
  const close = (): void => {
    setSecret('');
    setError(undefined);
    onClose();
  };
  return (
    <Dialog open={open} title="Add a channel" onClose={close} wide>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const p = paramsOf(d, secret !== '');
          const s = secret === '' ? {} : d.type === 'slack' ? { url: secret } : { [{ webhook: 'secret', ntfy: 'token', email: 'password' }[d.type]]: secret };
          try {
            await client.alerts.addChannel({
              name: d.name.trim(),
              type: d.type,
              ...(d.type === 'webhook' || (d.type === 'ntfy' && d.url.trim()) ? { url: d.url.trim() } : {}),
              ...(d.type === 'ntfy' ? { topic: d.topic.trim() } : {}),
              ...(d.type === 'email'
                ? { host: d.host.trim(), security: d.security, from: d.from.trim(), to: p.to ?? [], ...(p.port ? { port: p.port } : {}), ...(d.user.trim() ? { user: d.user.trim() } : {}) }
                : {}),
              ...s,
            });
            setD(EMPTY);
            setSecret('');
            setError(undefined);
            onDone();
          } catch (err) {
            setError(describeError(err));
          }
        }}
      >
        <div class="form-grid">
          {input('ch-name', 'Name', 'name', { hint: 'lowercase letters, digits, - and _', required: true })}
          <SelectField id="ch-type" label="Type" value={d.type} values={TYPES} onChange={(v) => set({ type: v as ChannelType })} />
        </div>
        {d.type === 'webhook' ? input('ch-url', 'URL', 'url', { hint: 'the receiver: cairn POSTs signed JSON to it', required: true, type: 'url', placeholder: 'https://ops.example.com/cairn' }) : null}
        {d.type === 'ntfy' ? (
          <div class="form-grid">
            {input('ch-url', 'Server', 'url', { hint: 'default https://ntfy.sh', type: 'url' })}
            {input('ch-topic', 'Topic', 'topic', { required: true, hint: 'hard to guess on a public server' })}
          </div>
        ) : null}
        {d.type === 'email' ? (
          <>
            <div class="form-grid">
              {input('ch-host', 'SMTP host', 'host', { required: true })}
              {input('ch-port', 'Port', 'port', { hint: 'default 465 (tls), 587 (starttls), 25 (none)', type: 'number' })}
              <SelectField id="ch-security" label="Security" value={d.security} values={['starttls', 'tls', 'none']} onChange={(v) => set({ security: v as Draft['security'] })} />
              {input('ch-user', 'SMTP user', 'user')}
            </div>
            <div class="form-grid">
              {input('ch-from', 'From', 'from', { required: true, placeholder: 'cairn@example.com' })}
              {input('ch-to', 'To', 'to', { required: true, hint: 'one or more addresses, separated by commas' })}
            </div>
          </>
        ) : null}
        <Field id="ch-secret" label={sf.label} hint={`${sf.hint}. Stored by the server, never shown again.`}>
          <input
            id="ch-secret"
            class="mono"
            type="password"
            autoComplete="new-password"
            spellcheck={false}
            value={secret}
            required={sf.required}
            onInput={(e) => setSecret((e.currentTarget as HTMLInputElement).value)}
            aria-describedby="ch-secret-hint"
          />
        </Field>
        <ActionError message={error} />
        <DialogActions label="Add channel" onCancel={close} />
        <Equivalents action="alert.channelAdd" params={paramsOf(d, secret !== '')} />
      </form>
    </Dialog>
  );
}

function AddRuleDialog({ open, channels, onClose, onDone }: { open: boolean; channels: AlertChannel[]; onClose: () => void; onDone: () => void }) {
  const [channel, setChannel] = useState('');
  const [on, setOn] = useState<string[]>(['failure']);
  const [source, setSource] = useState('');
  const [schedule, setSchedule] = useState('');
  const [error, setError] = useState<string | undefined>();
  const sources = useAsync(() => (open ? client.sources.list() : Promise.resolve([])), [open]);
  const schedules = useAsync(() => (open ? client.schedules.list() : Promise.resolve([])), [open]);
  const chosen = channel || channels[0]?.name || '';
  const params = { channel: chosen || 'CHANNEL', on, ...(source ? { source } : {}), ...(schedule ? { schedule } : {}) };
  return (
    <Dialog open={open} title="Add a rule" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!on.length) {
            setError('Choose at least one kind of event.');
            return;
          }
          try {
            await client.alerts.addRule({ channel: chosen, on: on as (typeof KINDS)[number][], ...(source ? { source } : {}), ...(schedule ? { schedule } : {}) });
            setError(undefined);
            setSource('');
            setSchedule('');
            onDone();
          } catch (err) {
            setError(describeError(err));
          }
        }}
      >
        <SelectField id="rule-channel" label="Channel" value={chosen} values={channels.map((c) => c.name)} onChange={setChannel} required />
        <fieldset>
          <legend>Events</legend>
          {KINDS.map((k) => (
            <label class="check" key={k}>
              <input type="checkbox" checked={on.includes(k)} onChange={(e) => setOn((list) => ((e.currentTarget as HTMLInputElement).checked ? KINDS.filter((x) => x === k || list.includes(x)) : list.filter((x) => x !== k)))} />
              {KIND_TEXT[k]}
            </label>
          ))}
        </fieldset>
        <div class="form-grid">
          <SelectField id="rule-source" label="Source" value={source} blank="Any source" values={(sources.data ?? []).map((s) => s.name)} onChange={setSource} />
          <SelectField id="rule-schedule" label="Schedule" value={schedule} blank="Any schedule" values={(schedules.data ?? []).map((s) => s.name)} onChange={setSchedule} />
        </div>
        <ActionError message={error} />
        <DialogActions label="Add rule" onCancel={onClose} />
        <Equivalents action="alert.ruleAdd" params={params} />
      </form>
    </Dialog>
  );
}
