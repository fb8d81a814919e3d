import { useEffect, useState } from 'preact/hooks';
import { isAbort } from './api';

export interface Async<T> {
  data?: T;
  error?: Error;
  loading: boolean;
}

/** useAsync runs load whenever deps change, aborting the previous run. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<Async<T>>({ loading: true });
  useEffect(() => {
    const ac = new AbortController();
    setState((s) => ({ data: s.data, loading: true }));
    load(ac.signal).then(
      (data) => !ac.signal.aborted && setState({ data, loading: false }),
      (error) => !ac.signal.aborted && !isAbort(error) && setState({ error, loading: false }),
    );
    return () => ac.abort();
  }, deps);
  return state;
}
