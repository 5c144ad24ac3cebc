/** The dashboard's shell: sign-in gate, navigation, and the page for the current route. */
import { useEffect, useMemo, useState, type ReactNode } from 'react';
import { Api, setUnauthorizedHandler } from './api.js';
import { Link } from './components.js';
import { Deployments } from './pages/deployments.js';
import { Fleet } from './pages/fleet.js';
import { Models } from './pages/models.js';
import { Pipelines, StartRun } from './pages/pipelines.js';
import { RunPage } from './pages/run.js';
import { SignIn } from './pages/sign-in.js';
import { SitePage } from './pages/site.js';
import { match, navigate, useLocation } from './router.js';
import { clearToken, storeToken, storedToken } from './session.js';

const NAV = [
  { to: '/', label: 'Fleet', active: (p: string) => p === '/' || p.startsWith('/sites/') },
  { to: '/deployments', label: 'Deployments', active: (p: string) => p.startsWith('/deployments') },
  { to: '/pipelines', label: 'Pipelines', active: (p: string) => p.startsWith('/pipelines') },
  { to: '/models', label: 'Models', active: (p: string) => p.startsWith('/models') },
] as const;

const TITLES: Record<string, string> = {
  '/': 'Fleet',
  '/deployments': 'Deployments',
  '/pipelines': 'Pipelines',
  '/models': 'Models',
};

function route(api: Api, path: string): { title: string; page: ReactNode } {
  let m: Record<string, string> | undefined;
  if ((m = match('/sites/:name', path)) !== undefined)
    return {
      title: `Site ${m['name']}`,
      page: <SitePage key={m['name']} api={api} name={m['name'] ?? ''} />,
    };
  if ((m = match('/pipelines/runs/:id', path)) !== undefined)
    return { title: `Run ${m['id']}`, page: <RunPage key={m['id']} api={api} id={m['id'] ?? ''} /> };
  if (path === '/pipelines/new') return { title: 'Start a run', page: <StartRun api={api} /> };
  switch (path) {
    case '/':
      return { title: 'Fleet', page: <Fleet api={api} /> };
    case '/deployments':
      return { title: 'Deployments', page: <Deployments api={api} /> };
    case '/pipelines':
      return { title: 'Pipelines', page: <Pipelines api={api} /> };
    case '/models':
      return { title: 'Models', page: <Models api={api} /> };
  }
  return {
    title: 'Not found',
    page: (
      <div className="state state-empty">
        <h1>No such page</h1>
        <p>
          Nothing lives at <code>{path}</code>. <Link to="/">Go to the fleet</Link>.
        </p>
      </div>
    ),
  };
}

/** The app: signs in, then shows the page of the current URL. */
export function App() {
  const [token, setToken] = useState(storedToken);
  const [notice, setNotice] = useState<string | undefined>();
  const { path, query } = useLocation();
  const api = useMemo(() => (token === undefined ? undefined : new Api(token)), [token]);

  useEffect(() => {
    setUnauthorizedHandler((message) => {
      clearToken();
      setToken(undefined);
      setNotice(`You were signed out: ${message}.`);
    });
  }, []);

  const signedIn = api !== undefined;
  useEffect(() => {
    if (!signedIn && path !== '/sign-in') {
      const next = path + (query.size > 0 ? `?${query}` : '');
      navigate(`/sign-in${next === '/' ? '' : `?next=${encodeURIComponent(next)}`}`, true);
    } else if (signedIn && path === '/sign-in') {
      const next = query.get('next');
      navigate(next !== null && next.startsWith('/') && !next.startsWith('//') ? next : '/', true);
    }
  }, [signedIn, path, query]);

  const current = api === undefined ? undefined : route(api, path);
  useEffect(() => {
    document.title = `${current?.title ?? TITLES[path] ?? 'Sign in'} · ai-edge`;
  }, [current?.title, path]);

  if (api === undefined || path === '/sign-in') {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(t) => {
          storeToken(t);
          setNotice(undefined);
          setToken(t);
        }}
      />
    );
  }
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand" aria-label="ai-edge dashboard home">
          <span className="brand-mark" aria-hidden="true" /> ai-edge
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={n.active(path) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <button
          type="button"
          className="sign-out"
          onClick={() => {
            clearToken();
            setNotice('You signed out.');
            setToken(undefined);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main" className="content" tabIndex={-1}>
        {current?.page}
      </main>
    </div>
  );
}
