// fetch wrapper for Vigil's APIs: adds the bearer token, turns error
// envelopes (Jaeger, logs, Prometheus) into ApiError with the server's message.
import { getToken, markUnauthorized } from './auth';

export class ApiError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export type Params = Record<string, string | number | undefined | null | (string | number)[]>;

export function withParams(path: string, params?: Params): string {
  if (!params) return path;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, String(x)));
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

/** errorMessage extracts the message of an error body of any of Vigil's APIs. */
export function errorMessage(body: unknown, status: number): string {
  if (body && typeof body === 'object') {
    const b = body as any;
    if (typeof b.error === 'string' && b.error) return b.error;
    if (Array.isArray(b.errors) && b.errors.length) {
      return b.errors.map((e: any) => (typeof e?.msg === 'string' ? e.msg : JSON.stringify(e))).join('; ');
    }
  }
  return `HTTP ${status}`;
}

/**
 * request sends one request with the bearer token and decodes its JSON
 * answer; it throws ApiError on a non-2xx answer, with the server's
 * message. A non-JSON body reads as null for GET and as its text for the
 * other methods (Alertmanager's API answers some errors in plain text).
 */
async function request<T>(method: string, url: string, body: unknown, signal?: AbortSignal): Promise<T> {
  return (await requestWithHeaders<T>(method, url, body, signal)).data;
}

/** requestWithHeaders is request that also returns the answer's headers. */
async function requestWithHeaders<T>(method: string, url: string, body: unknown, signal?: AbortSignal): Promise<{ data: T; headers: Headers }> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    signal,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let parsed: unknown = null;
  const text = await res.text();
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = method === 'GET' ? null : text;
    }
  }
  if (res.status === 401) markUnauthorized();
  if (!res.ok) {
    const msg = typeof parsed === 'string' && parsed ? parsed.trim() : errorMessage(parsed, res.status);
    throw new ApiError(res.status, msg);
  }
  return { data: parsed as T, headers: res.headers };
}

/** apiGet fetches a JSON document; it throws ApiError on a non-2xx answer. */
export function apiGet<T>(path: string, params?: Params, signal?: AbortSignal): Promise<T> {
  return request<T>('GET', withParams(path, params), undefined, signal);
}

/**
 * apiGetWithHeaders is apiGet that also returns the answer's headers
 * (e.g. X-Vigil-Scrape-Leader); it throws ApiError on a non-2xx answer.
 */
export function apiGetWithHeaders<T>(path: string, params?: Params, signal?: AbortSignal): Promise<{ data: T; headers: Headers }> {
  return requestWithHeaders<T>('GET', withParams(path, params), undefined, signal);
}

/** apiSend sends a JSON body (or none) with method; it returns the decoded answer and throws ApiError on a non-2xx answer. */
export function apiSend<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  return request<T>(method, path, body, signal);
}

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}
