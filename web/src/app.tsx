/**
 * The console shell: sign-in, the navigation (role-aware), and the screen the hash names.
 * On load GET /v1/session says whether the cookie is a live session and its role.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { can, CairnApiError, client, describeError, onSessionExpired, setCsrfToken, type Role } from './api.js';
import { href, useRoute } from './router.js';
import { SessionContext } from './session.js';
import type { SessionInfo } from './types.js';
import { Badge, Loading, Time } from './ui.js';
import { OverviewScreen } from './screens/overview.js';
import { BackupsScreen } from './screens/backups.js';
import { BackupDetailScreen } from './screens/backup-detail.js';
import { RestoreScreen } from './screens/restore.js';
import { JobsScreen } from './screens/jobs.js';
import { SchedulesScreen } from './screens/schedules.js';
import { RepositoriesScreen, SourcesScreen } from './screens/registry.js';
import { TokensScreen } from './screens/tokens.js';
import { AlertsScreen } from './screens/alerts.js';

interface NavItem {
  screen: string;
  label: string;
  least: Role;
  icon: string;
}

/** SVG path data (24×24, stroked) for the navigation icons. */
const NAV: NavItem[] = [
  { screen: 'overview', label: 'Overview', least: 'viewer', icon: 'M3 13h8V3H3zM13 21h8V11h-8zM3 21h8v-6H3zM13 3v6h8V3z' },
  { screen: 'backups', label: 'Backups', least: 'viewer', icon: 'M4 6c0-1.7 3.6-3 8-3s8 1.3 8 3-3.6 3-8 3-8-1.3-8-3zM4 6v6c0 1.7 3.6 3 8 3s8-1.3 8-3V6M4 12v6c0 1.7 3.6 3 8 3s8-1.3 8-3v-6' },
  { screen: 'restore', label: 'Restore', least: 'operator', icon: 'M3 12a9 9 0 1 0 3-6.7L3 8M3 3v5h5M12 7v5l3 3' },
  { screen: 'jobs', label: 'Jobs', least: 'viewer', icon: 'M4 6h16M4 12h10M4 18h7M18 14l3 3-3 3' },
  { screen: 'schedules', label: 'Schedules', least: 'viewer', icon: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM12 7v5l3 2' },
  { screen: 'sources', label: 'Sources', least: 'viewer', icon: 'M5 4h14v6H5zM5 14h14v6H5zM8 7h.01M8 17h.01' },
  { screen: 'repositories', label: 'Repositories', least: 'viewer', icon: 'M3 7l9-4 9 4-9 4zM3 12l9 4 9-4M3 17l9 4 9-4' },
  { screen: 'tokens', label: 'Tokens', least: 'admin', icon: 'M15 7a4 4 0 1 1-3.9 5H3v4h3v-2h2v2h3.1A4 4 0 0 1 15 7z' },
  { screen: 'alerts', label: 'Alerts', least: 'admin', icon: 'M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 21h4' },
];

function Icon({ d }: { d: string }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d={d} />
    </svg>
  );
}

export function App() {
  const [session, setSession] = useState<SessionInfo | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | undefined>();
  const [loadError, setLoadError] = useState<string | undefined>();

  useEffect(() => {
    onSessionExpired(() => {
      setSession((s) => {
        if (s) setNotice('Your session expired or was ended: sign in again.');
        return null;
      });
      setCsrfToken(undefined);
    });
    client.session.get().then(
      ({ session: s }) => {
        setCsrfToken(s.csrfToken);
        setSession(s);
      },
      (err: unknown) => {
        if (!(err instanceof CairnApiError && err.status === 401)) setLoadError(describeError(err));
        setSession(null);
      },
    );
  }, []);

  if (session === undefined) return <Loading label="Opening the console…" />;
  if (!session)
    return (
      <SignIn
        notice={notice ?? loadError}
        onSignedIn={(s) => {
          setCsrfToken(s.csrfToken);
          setNotice(undefined);
          setLoadError(undefined);
          setSession(s);
        }}
      />
    );
  return (
    <SessionContext.Provider value={session}>
      <Shell
        session={session}
        onSignOut={async () => {
          // "Signed out" only once the server ended the session and cleared the cookie; if it
          // could not be reached, say so: the cookie may still be valid until it expires.
          const ended = await client.session.delete().then(
            () => true,
            (err: unknown) => err instanceof CairnApiError && err.status === 401,
          );
          setCsrfToken(undefined);
          setNotice(ended ? 'You are signed out.' : 'The server could not be reached to end the session: it ends by itself when it expires.');
          setSession(null);
        }}
      />
    </SessionContext.Provider>
  );
}

function Logo() {
  return (
    <svg class="logo" viewBox="0 0 32 32" aria-hidden="true" focusable="false">
      <ellipse cx="16" cy="26" rx="11" ry="3.5" />
      <ellipse cx="16" cy="18.5" rx="8" ry="3" />
      <ellipse cx="16" cy="12" rx="5.5" ry="2.6" />
      <ellipse cx="16" cy="6.5" rx="3.2" ry="2" />
    </svg>
  );
}

function SignIn({ notice, onSignedIn }: { notice?: string; onSignedIn: (s: SessionInfo) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const session = await client.session.create({ token: token.trim() });
      setToken('');
      onSignedIn(session);
    } catch (err) {
      setError(err instanceof CairnApiError && err.status === 401 ? 'That token is not valid (unknown or revoked). Check it and try again.' : describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <form class="signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="signin-brand">
          <Logo />
          <span>cairn</span>
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        <p class="muted">Paste an API token. The console keeps a session cookie, not the token.</p>
        {notice ? (
          <div class="note note-info" role="status">
            {notice}
          </div>
        ) : null}
        {error ? (
          <div class="note note-error" role="alert">
            {error}
          </div>
        ) : null}
        <div class="field">
          <label for="signin-token">API token</label>
          <input
            id="signin-token"
            data-testid="signin-token"
            type="password"
            autoComplete="off"
            spellcheck={false}
            required
            value={token}
            onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
            aria-describedby="signin-hint"
          />
          <p class="hint" id="signin-hint">
            Create one on the server: <code>cairn token create --role viewer</code>
          </p>
        </div>
        <button class="btn btn-primary btn-block" type="submit" data-testid="signin-submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: SessionInfo; onSignOut: () => void }) {
  const route = useRoute();
  const [menuOpen, setMenuOpen] = useState(false);
  const mainRef = useRef<HTMLElement>(null);
  const items = NAV.filter((n) => can(session.role, n.least));
  const first = useRef(true);

  // A new screen: close the phone menu, move focus to its heading (screen readers hear it).
  useEffect(() => {
    setMenuOpen(false);
    if (first.current) {
      first.current = false;
      return;
    }
    const h = document.getElementById('page-title');
    h?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [route.screen, route.id]);

  return (
    <div class="shell">
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); mainRef.current?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href('overview')}>
          <Logo />
          <span>cairn</span>
        </a>
        <button type="button" class="menu-button" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen(!menuOpen)}>
          <Icon d={menuOpen ? 'M6 6l12 12M18 6L6 18' : 'M4 7h16M4 12h16M4 17h16'} />
          <span>Menu</span>
        </button>
      </header>
      <nav id="nav" class={`sidebar${menuOpen ? ' open' : ''}`} aria-label="Console">
        <a class="brand brand-side" href={href('overview')}>
          <Logo />
          <span>cairn</span>
        </a>
        <ul>
          {items.map((n) => (
            <li key={n.screen}>
              <a href={href(n.screen)} data-testid={`nav-${n.screen}`} aria-current={route.screen === n.screen ? 'page' : undefined} onClick={() => setMenuOpen(false)}>
                <Icon d={n.icon} />
                {n.label}
              </a>
            </li>
          ))}
        </ul>
        <div class="whoami">
          <div class="whoami-line">
            <span class="whoami-name" title={`token ${session.tokenId}`}>
              {session.tokenName || `token ${session.tokenId}`}
            </span>
            <Badge value={session.role} />
          </div>
          {session.expiresAt ? (
            <div class="whoami-exp">
              session ends <Time iso={session.expiresAt} onlyRel />
            </div>
          ) : null}
          <button type="button" class="btn btn-ghost btn-block" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </nav>
      <main id="main" ref={mainRef} tabIndex={-1} class="content">
        <Screen screen={route.screen} id={route.id} query={route.query} role={session.role} />
      </main>
    </div>
  );
}

function Screen({ screen, id, query, role }: { screen: string; id?: string; query: URLSearchParams; role: Role }) {
  switch (screen) {
    case 'overview':
      return <OverviewScreen />;
    case 'backups':
      return id ? <BackupDetailScreen id={id} repository={query.get('repository') ?? undefined} /> : <BackupsScreen query={query} />;
    case 'restore':
      return <RestoreScreen query={query} />;
    case 'jobs':
      return <JobsScreen query={query} />;
    case 'schedules':
      return <SchedulesScreen />;
    case 'sources':
      return <SourcesScreen />;
    case 'repositories':
      return <RepositoriesScreen />;
    case 'tokens':
      return can(role, 'admin') ? <TokensScreen /> : <NotAllowed />;
    case 'alerts':
      return can(role, 'admin') ? <AlertsScreen query={query} /> : <NotAllowed />;
    default:
      return (
        <section class="card">
          <h1 id="page-title" tabIndex={-1}>
            Not found
          </h1>
          <p>
            No screen “{screen}”. <a href={href('overview')}>Go to the overview</a>.
          </p>
        </section>
      );
  }
}

function NotAllowed() {
  return (
    <section class="card">
      <h1 id="page-title" tabIndex={-1}>
        Admins only
      </h1>
      <p>This screen needs an admin token.</p>
    </section>
  );
}
