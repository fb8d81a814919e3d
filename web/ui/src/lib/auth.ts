// The read token for a bearer-protected Vigil, kept for the browser session.

const KEY = 'vigil.token';
const listeners = new Set<() => void>();
let needed = false;

export function getToken(): string {
  try {
    return sessionStorage.getItem(KEY) ?? '';
  } catch {
    return '';
  }
}

export function setToken(token: string): void {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: the token lives as long as the page
  }
  needed = false;
  listeners.forEach((l) => l());
}

/** loginNeeded reports whether the API answered 401 since the last setToken. */
export function loginNeeded(): boolean {
  return needed;
}

/** markUnauthorized records a 401 answer so that the shell shows the login. */
export function markUnauthorized(): void {
  if (needed) return;
  needed = true;
  listeners.forEach((l) => l());
}

export function onAuthChange(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/** base64url encodes a token for the WebSocket subprotocol vigil.bearer.<base64url(token)>. */
export function base64url(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** wsProtocols returns the subprotocols a live-tail WebSocket offers: the tail protocol and, with a token, the bearer one. */
export function wsProtocols(token: string): string[] {
  return token ? ['vigil.tail', 'vigil.bearer.' + base64url(token)] : ['vigil.tail'];
}
