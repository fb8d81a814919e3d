// A small history-API router: the path picks the page, the query string
// holds the page's state.
import { useEffect, useState } from 'preact/hooks';

export interface Location {
  path: string;
  search: string;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: window.location.pathname, search: window.location.search };
}

/** navigate changes the URL and re-renders; replace keeps the history entry (for state tweaks). */
export function navigate(url: string, replace = false): void {
  const before = window.location.pathname + window.location.search;
  if (url === before) return;
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  listeners.forEach((l) => l());
}

window.addEventListener('popstate', () => listeners.forEach((l) => l()));

/** useLocation returns the current location and re-renders on change. */
export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const l = () => setLoc(current());
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return loc;
}

/** onLinkClick turns a plain left click on an <a href> into client-side navigation. */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || a.target || a.hasAttribute('download')) return;
  const href = a.getAttribute('href');
  if (!href || !href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/')) return;
  e.preventDefault();
  navigate(href);
}
