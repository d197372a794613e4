/** Small shared pieces of the console: times, badges, dialogs, equivalents, async loading. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { describeError } from './api.js';
import { equivalents, SDK_PREAMBLE, type Action, type ActionParams } from './equivalents.js';
import { localTime, relative, utcTime } from './format.js';

/** A time in the viewer's zone (or `zone`), UTC on hover; `rel` adds "3 h ago". */
export function Time({ iso, rel, zone, onlyRel }: { iso: string | null | undefined; rel?: boolean; zone?: string; onlyRel?: boolean }) {
  if (!iso) return <span class="muted">—</span>;
  const shown = onlyRel ? relative(iso) : localTime(iso, zone);
  return (
    <time dateTime={iso} title={utcTime(iso)}>
      {shown}
      {rel && !onlyRel ? <span class="muted"> · {relative(iso)}</span> : null}
    </time>
  );
}

const TONE: Record<string, string> = {
  SUCCESS: 'ok', ok: 'ok', FAILED: 'bad', failing: 'bad', CANCELED: 'neutral', CANCELLING: 'warn', late: 'warn', never: 'neutral',
  STARTED: 'info', TRANSFERRING: 'info', TRANSFERRED: 'info', FINALIZING: 'info', running: 'info',
  admin: 'bad', operator: 'warn', viewer: 'neutral', enabled: 'ok', disabled: 'neutral', manual: 'neutral', scheduled: 'info',
  delivered: 'ok', failed: 'bad', pending: 'warn', set: 'ok', failure: 'bad', success: 'ok', recovery: 'ok', rpo: 'warn', stuck: 'warn', test: 'info',
};

/** A state as text in a tinted pill (the word carries the meaning, the colour only helps). */
export function Badge({ value, testid }: { value: string; testid?: string }) {
  return (
    <span class={`badge tone-${TONE[value] ?? 'neutral'}`} data-testid={testid}>
      {value}
    </span>
  );
}

export function ErrorNote({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div class="note note-error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {describeError(error)}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

export function PageHeader({ title, subtitle, children }: { title: string; subtitle?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <div>
        <h1 id="page-title" tabIndex={-1}>
          {title}
        </h1>
        {subtitle ? <p class="subtitle">{subtitle}</p> : null}
      </div>
      {children ? <div class="page-actions">{children}</div> : null}
    </header>
  );
}

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change (and on reload); the newest call wins. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, error: undefined, loading: false }),
      (error: unknown) => mine === seq.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** A copy-to-clipboard button that says when it worked. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="btn btn-small"
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        });
      }}
    >
      {done ? 'Copied' : label}
      <span class="visually-hidden" aria-live="polite">
        {done ? ' copied to the clipboard' : ''}
      </span>
    </button>
  );
}

/** One action of an equivalents disclosure: its label and the request's parameters. */
export interface EquivalentItem<A extends Action = Action> {
  label: string;
  action: A;
  params: ActionParams[A];
}

/** "Show CLI / curl / SDK": the same request as a cairn command, a curl call and SDK code. */
export function Equivalents<A extends Action>({ action, params }: { action: A; params: ActionParams[A] }) {
  return <EquivalentsList items={[{ label: '', action, params } as EquivalentItem]} />;
}

/** One disclosure for several actions (the buttons of a row or card), each labelled. */
export function EquivalentsList({ items }: { items: EquivalentItem[] }) {
  const [open, setOpen] = useState(false);
  return (
    <details class="equivalents" data-testid="equivalents" onToggle={(ev) => setOpen((ev.currentTarget as HTMLDetailsElement).open)}>
      <summary>Show CLI / curl / SDK</summary>
      {open
        ? items.map((item) => {
            const e = equivalents(item.action, item.params as never);
            return (
              <div class="equivalents-body" key={item.label || item.action}>
                {item.label ? <h3 class="equivalents-title">{item.label}</h3> : null}
                <Snippet label="CLI" text={e.cli} note={e.cliNote} />
                <Snippet label="curl" text={e.curl} note="CAIRN_SERVER: this server's URL; CAIRN_TOKEN: an API token (the console uses a session instead)" />
                <Snippet label="SDK (TypeScript)" text={`${SDK_PREAMBLE}\n${e.sdk}`} />
              </div>
            );
          })
        : null}
    </details>
  );
}

function Snippet({ label, text, note }: { label: string; text: string | null; note?: string }) {
  return (
    <div class="snippet">
      <div class="snippet-head">
        <span class="snippet-label">{label}</span>
        {text ? <CopyButton text={text} label={`Copy ${label}`} /> : null}
      </div>
      {text ? <pre tabIndex={0}>{text}</pre> : null}
      {note ? <p class="hint">{note}</p> : null}
    </div>
  );
}

/**
 * A modal `<dialog>`: focus goes to its first control when it opens and back to what had it when
 * it closes; Escape closes it (the browser's own cancel).
 */
export function Dialog({ open, title, onClose, children, wide }: { open: boolean; title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement;
      d.showModal();
      const first = d.querySelector<HTMLElement>('[data-autofocus], input, select, textarea, button:not(.dialog-close)');
      first?.focus();
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    const closed = (): void => {
      onClose();
      if (opener.current instanceof HTMLElement) opener.current.focus();
    };
    d.addEventListener('close', closed);
    return () => d.removeEventListener('close', closed);
  }, [onClose]);
  const titleId = `dlg-${title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <dialog ref={ref} class={`dialog${wide ? ' dialog-wide' : ''}`} aria-labelledby={titleId}>
      <div class="dialog-head">
        <h2 id={titleId}>{title}</h2>
        <button type="button" class="dialog-close" aria-label="Close" onClick={() => ref.current?.close()}>
          ×
        </button>
      </div>
      {open ? <div class="dialog-body">{children}</div> : null}
    </dialog>
  );
}

/**
 * A table in a container that scrolls sideways on narrow screens, with a caption for screen
 * readers; `stack`: on a phone each row becomes a card, each cell labelled by its `data-label`.
 */
export function TableWrap({ caption, children, stack }: { caption: string; children: ComponentChildren; stack?: boolean }) {
  return (
    <div class="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table class={stack ? 'stack' : undefined}>
        <caption class="visually-hidden">{caption}</caption>
        {children}
      </table>
    </div>
  );
}

/** A labelled form field: the label's `for` is the control's id. */
export function Field({ id, label, hint, children }: { id: string; label: string; hint?: ComponentChildren; children: ComponentChildren }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint ? <p class="hint" id={`${id}-hint`}>{hint}</p> : null}
    </div>
  );
}

/** Empty-state text inside a card. */
export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** The message of a failed action (already described), as an alert; nothing when there is none. */
export function ActionError({ message }: { message: string | undefined }) {
  if (!message) return null;
  return (
    <p class="note note-error" role="alert">
      {message}
    </p>
  );
}

/**
 * A dialog's buttons: the action, then Cancel. Without `onConfirm` the action submits the dialog's
 * form. `danger`: a destructive action, so the cancel button takes the first focus instead.
 */
export function DialogActions({
  label,
  onConfirm,
  onCancel,
  danger,
  disabled,
  cancelLabel = 'Cancel',
}: {
  label: ComponentChildren;
  onConfirm?: () => void;
  onCancel: () => void;
  danger?: boolean;
  disabled?: boolean;
  cancelLabel?: string;
}) {
  return (
    <div class="dialog-actions">
      <button type={onConfirm ? 'button' : 'submit'} class={danger ? 'btn btn-danger' : 'btn btn-primary'} disabled={disabled} onClick={onConfirm}>
        {label}
      </button>
      <button type="button" class="btn" data-autofocus={danger ? '' : undefined} onClick={onCancel}>
        {cancelLabel}
      </button>
    </div>
  );
}

/** A column of a TableHead: its label, or [label, class] (e.g. "num"); false or null leaves it out. */
export type Column = string | readonly [string, string] | false | null | undefined;

/** A table's header row; `actions` adds a last column for row buttons, named for screen readers only. */
export function TableHead({ columns, actions }: { columns: Column[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {columns.map((c) =>
          !c ? null : typeof c === 'string' ? (
            <th key={c} scope="col">
              {c}
            </th>
          ) : (
            <th key={c[0]} scope="col" class={c[1]}>
              {c[0]}
            </th>
          ),
        )}
        {actions ? (
          <th scope="col">
            <span class="visually-hidden">Actions</span>
          </th>
        ) : null}
      </tr>
    </thead>
  );
}

/**
 * A labelled `<select>` of plain values, each shown as itself; `blank`: a first choice with the
 * value "" shown as this text. `onChange` gets the chosen value.
 */
export function SelectField({
  id,
  label,
  value,
  values,
  blank,
  required,
  onChange,
}: {
  id: string;
  label: string;
  value: string;
  values: readonly string[];
  blank?: string;
  required?: boolean;
  onChange: (value: string) => void;
}) {
  return (
    <Field id={id} label={label}>
      <select id={id} value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)} required={required}>
        {blank !== undefined ? <option value="">{blank}</option> : null}
        {values.map((v) => (
          <option key={v} value={v}>
            {v}
          </option>
        ))}
      </select>
    </Field>
  );
}
