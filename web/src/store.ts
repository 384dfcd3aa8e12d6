// A minimal external store: state replaced immutably, listeners notified once per
// turn (many WebSocket frames in a burst cause one render, not one per frame), and a
// hook that re-renders a component only when the slice it selects changes.

import { useEffect, useReducer, useRef } from 'preact/hooks';

export type Listener = () => void;

export class Store<S> {
  private state: S;
  private readonly listeners = new Set<Listener>();
  private scheduled = false;

  constructor(
    initial: S,
    private readonly schedule: (flush: () => void) => void = (f) => setTimeout(f, 0),
  ) {
    this.state = initial;
  }

  get(): S {
    return this.state;
  }

  /** Replace part of the state; listeners hear of it once this turn is over. */
  set(patch: Partial<S> | ((s: S) => Partial<S>)): void {
    const p = typeof patch === 'function' ? patch(this.state) : patch;
    let changed = false;
    for (const k in p) {
      if (!Object.is((this.state as Record<string, unknown>)[k], (p as Record<string, unknown>)[k])) {
        changed = true;
        break;
      }
    }
    if (!changed) return;
    this.state = { ...this.state, ...p };
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => {
        this.scheduled = false;
        for (const l of [...this.listeners]) l();
      });
    }
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** The slice `select` picks from the store; re-renders only when it changes (Object.is). */
export function useStore<S, T>(store: Store<S>, select: (s: S) => T): T {
  const [, force] = useReducer((n: number) => n + 1, 0);
  const selectRef = useRef(select);
  selectRef.current = select;
  const value = select(store.get());
  const valueRef = useRef(value);
  valueRef.current = value;
  useEffect(() => {
    const check = () => {
      const next = selectRef.current(store.get());
      if (!Object.is(next, valueRef.current)) force(0);
    };
    const off = store.subscribe(check);
    check(); // it may have changed between render and subscribe
    return off;
  }, [store]);
  return value;
}
