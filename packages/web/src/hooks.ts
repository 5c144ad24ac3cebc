/** Data loading with live refresh: polling that pauses while the tab is hidden, and a ticking clock. */
import { useCallback, useEffect, useRef, useState } from 'react';

/** State of a polled resource: the last data, the last error, and whether the first load is pending. */
export interface Polled<T> {
  readonly data: T | undefined;
  readonly error: Error | undefined;
  readonly loading: boolean;
  /** When the data was last loaded successfully. */
  readonly updatedAt: number | undefined;
  /** Loads again now. */
  readonly reload: () => void;
}

/**
 * Loads with `load` and again every `intervalMs` while the page is visible. Keeps the last data when
 * a refresh fails (the error is reported next to it). `key` changes start over.
 */
export function usePolling<T>(
  load: (signal: AbortSignal) => Promise<T>,
  key: string,
  intervalMs: number,
): Polled<T> {
  const [state, setState] = useState<{ key: string; data?: T; error?: Error; updatedAt?: number }>({ key });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const data = await loadRef.current(abort.signal);
        if (!abort.signal.aborted) setState({ key, data, updatedAt: Date.now() });
      } catch (error) {
        if (abort.signal.aborted) return;
        setState((s) => ({ ...(s.key === key ? s : { key }), error: error as Error }));
      }
      if (!abort.signal.aborted && intervalMs > 0) timer = setTimeout(schedule, intervalMs);
    };
    const schedule = () => {
      if (document.visibilityState === 'hidden') {
        timer = setTimeout(schedule, 1000);
        return;
      }
      void run();
    };
    void run();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [key, intervalMs, tick]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  const current = state.key === key ? state : { key };
  return {
    data: current.data,
    error: current.error,
    loading: current.data === undefined && current.error === undefined,
    updatedAt: current.updatedAt,
    reload,
  };
}

/** The current time, updated every `everyMs` (for "5 s ago" and running timers). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}
