import { describe, expect, it } from 'vitest';
import { Store } from './store';
import { listen, routeRoom } from './chat';

describe('Store', () => {
  it('notifies once per turn, only on a change', () => {
    const flushes: (() => void)[] = [];
    const s = new Store({ a: 1, b: { x: 1 } }, (f) => flushes.push(f));
    let calls = 0;
    s.subscribe(() => calls++);
    s.set({ a: 2 });
    s.set((st) => ({ a: st.a + 1 }));
    expect(s.get().a).toBe(3);
    expect(flushes).toHaveLength(1);
    flushes.shift()!();
    expect(calls).toBe(1);
    const b = s.get().b;
    s.set({ b }); // same object: no change, no notification
    expect(flushes).toHaveLength(0);
  });
});

describe('routeRoom', () => {
  it('reads the room from the hash', () => {
    expect(routeRoom('#/rooms/abc')).toBe('abc');
    expect(routeRoom('#/rooms/a%20b')).toBe('a b');
    expect(routeRoom('#/')).toBeNull();
    expect(routeRoom('')).toBeNull();
  });
});

describe('listen', () => {
  it('adds a listener and returns its removal', () => {
    const seen: string[] = [];
    const stop = listen(window, 'hashchange', (e) => seen.push(e.type));
    window.dispatchEvent(new Event('hashchange'));
    stop();
    window.dispatchEvent(new Event('hashchange'));
    expect(seen).toEqual(['hashchange']);
  });
});
