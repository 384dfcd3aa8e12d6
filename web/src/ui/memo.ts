// `memo` without preact/compat: a component that re-renders only when a prop changed
// (shallow, by identity).
import { createElement, type ComponentChildren, type FunctionComponent } from 'preact';

export function shallowEqual(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  for (const k in a) if (!Object.is(a[k], b[k])) return false;
  for (const k in b) if (!(k in a)) return false;
  return true;
}

export function memo<P extends object>(
  inner: (props: P) => ComponentChildren,
  equal: (a: P, b: P) => boolean = shallowEqual as unknown as (a: P, b: P) => boolean,
): FunctionComponent<P> {
  function shouldComponentUpdate(this: { props: P }, next: P): boolean {
    return !equal(this.props, next);
  }
  function Memo(this: { shouldComponentUpdate?: (n: P) => boolean }, props: P) {
    this.shouldComponentUpdate = shouldComponentUpdate;
    return createElement(inner as FunctionComponent<P>, props);
  }
  Memo.displayName = `Memo(${(inner as { name?: string }).name ?? ''})`;
  return Memo as unknown as FunctionComponent<P>;
}
