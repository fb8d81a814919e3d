// The shell: header with the page navigation, language and theme
// switches, the login when the API asks for a token, and the routed page.
import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { onLinkClick, useLocation } from './lib/router';
import { languages, setLang, t, useLang, type Lang, type MessageKey } from './lib/i18n';
import { applyTheme, initialTheme, type Theme } from './lib/theme';
import { getToken, loginNeeded, onAuthChange, setToken } from './lib/auth';
import { ServicesPage } from './pages/Services';
import { TracesPage } from './pages/Traces';
import { TracePage } from './pages/Trace';
import { LogsPage } from './pages/Logs';
import { MetricsPage } from './pages/Metrics';
import { AlertsPage } from './pages/Alerts';
import { TargetsPage } from './pages/Targets';
import { ServiceMapPage } from './pages/ServiceMap';
import { Login } from './pages/Login';

interface NavItem {
  path: string;
  label: MessageKey;
  /** match reports whether a location path belongs to this item. */
  match: (p: string) => boolean;
}

// A new page adds an entry here and a route below. The service
// map is the landing page; data-nav is the path without its slash.
const nav: NavItem[] = [
  { path: '/map', label: 'nav.map', match: (p) => p === '/' || p.startsWith('/map') },
  { path: '/services', label: 'nav.services', match: (p) => p.startsWith('/services') },
  { path: '/traces', label: 'nav.traces', match: (p) => p.startsWith('/traces') || p.startsWith('/trace/') },
  { path: '/logs', label: 'nav.logs', match: (p) => p.startsWith('/logs') },
  { path: '/explore', label: 'nav.metrics', match: (p) => p.startsWith('/explore') },
  { path: '/targets', label: 'nav.targets', match: (p) => p.startsWith('/targets') },
  { path: '/alerts', label: 'nav.alerts', match: (p) => p.startsWith('/alerts') },
];

interface Route {
  pattern: RegExp;
  page: ComponentType<{ params: string[]; search: string }>;
}

const routes: Route[] = [
  { pattern: /^\/(?:map\/?)?$/, page: ServiceMapPage },
  { pattern: /^\/services\/?$/, page: ServicesPage },
  { pattern: /^\/traces\/?$/, page: TracesPage },
  { pattern: /^\/trace\/([^/]+)\/?$/, page: TracePage },
  { pattern: /^\/logs\/?$/, page: LogsPage },
  { pattern: /^\/explore\/?$/, page: MetricsPage },
  { pattern: /^\/targets\/?$/, page: TargetsPage },
  { pattern: /^\/alerts\/?$/, page: AlertsPage },
];

function NotFound() {
  return <p class="empty">{t('app.notFound')}</p>;
}

export function App() {
  const loc = useLocation();
  const lang = useLang();
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [authTick, setAuthTick] = useState(0);
  useEffect(() => onAuthChange(() => setAuthTick((n) => n + 1)), []);

  let Page: ComponentType<{ params: string[]; search: string }> = NotFound;
  let params: string[] = [];
  for (const r of routes) {
    const m = r.pattern.exec(loc.path);
    if (m) {
      Page = r.page;
      params = m.slice(1).map(decodeURIComponent);
      break;
    }
  }
  const token = getToken();

  return (
    <div class="shell" onClick={(e) => onLinkClick(e as unknown as MouseEvent)}>
      <header class="topbar">
        <a class="brand" href="/">
          <img src="/favicon.svg" alt="" width={20} height={20} />
          <span>Vigil</span>
        </a>
        <nav class="mainnav">
          {nav.map((n) => (
            <a key={n.path} href={n.path} class={n.match(loc.path) ? 'active' : ''} data-nav={n.path.slice(1)}>
              {t(n.label)}
            </a>
          ))}
        </nav>
        <div class="spacer" />
        <select
          class="lang-select"
          aria-label={t('app.language')}
          value={lang}
          onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}
        >
          {languages.map((l) => (
            <option key={l.id} value={l.id}>{l.label}</option>
          ))}
        </select>
        <button
          class="icon theme-toggle"
          title={t('app.theme') + ': ' + t(theme === 'dark' ? 'app.theme.dark' : 'app.theme.light')}
          aria-label={t('app.theme')}
          onClick={() => {
            const next = theme === 'dark' ? 'light' : 'dark';
            applyTheme(next, true);
            setTheme(next);
          }}
        >
          {theme === 'dark' ? '☾' : '☀'}
        </button>
        {token && (
          <button class="link" onClick={() => setToken('')}>
            {t('app.logout')}
          </button>
        )}
      </header>
      <main class="content" key={authTick + ':' + theme}>
        {loginNeeded() ? <Login /> : <Page params={params} search={loc.search} />}
      </main>
    </div>
  );
}
