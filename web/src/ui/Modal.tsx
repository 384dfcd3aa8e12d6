import { CloseButton } from './icons';
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef } from 'preact/hooks';

let ids = 0;

/** A modal dialog (native <dialog>: focus stays inside, Escape closes it). */
export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; testid?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  const idRef = useRef(`modal-${++ids}`);
  const onCloseRef = useRef(props.onClose);
  onCloseRef.current = props.onClose;
  // Layout effect: open and focus before the next event, so no keystroke is lost.
  useLayoutEffect(() => {
    const d = ref.current;
    if (!d) return undefined;
    const opener = document.activeElement as HTMLElement | null;
    if (!d.open) {
      try {
        d.showModal();
      } catch {
        d.setAttribute('open', '');
      }
    }
    const first = d.querySelector<HTMLElement>('input, select, textarea, button:not(.modal-close)');
    first?.focus();
    return () => {
      try {
        if (d.open) d.close();
      } catch {
        /* ignore */
      }
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class="modal"
      aria-labelledby={idRef.current}
      data-testid={props.testid}
      onClose={() => onCloseRef.current()}
      onCancel={(e) => {
        e.preventDefault();
        onCloseRef.current();
      }}
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          e.stopPropagation();
          onCloseRef.current();
        }
      }}
      onClick={(e) => {
        if (e.target === ref.current) onCloseRef.current();
      }}
    >
      <div class="modal-body">
        <div class="modal-head">
          <h2 id={idRef.current}>{props.title}</h2>
          <CloseButton class="modal-close" label="Close" onClick={() => onCloseRef.current()} />
        </div>
        {props.children}
      </div>
    </dialog>
  );
}
