import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import type { TlMessage } from '../state/timeline';
import { MessageRow, PendingRow, type RowActions, type RowProps } from './MessageRow';

const actions: RowActions = {
  edit: async () => undefined,
  startEdit: () => undefined,
  remove: () => undefined,
  react: () => undefined,
  reply: () => undefined,
  retry: () => undefined,
  discard: () => undefined,
  jumpTo: () => undefined,
  requestQuote: () => undefined,
};

function msg(over: Partial<TlMessage> = {}): TlMessage {
  return {
    seq: 7,
    message_id: 'm7',
    sender_id: 'u2',
    body: 'hi',
    deleted: false,
    reply_to: null,
    edited_at: null,
    edit_number: 0,
    reactions: {},
    sent_at: '2026-01-01T10:00:00Z',
    version: 9,
    bodyVersion: 9,
    ...over,
  };
}

/** Someone else's message `msg()`, seen by u1; `over` changes any prop. */
function messageRow(over: Partial<RowProps> = {}) {
  return (
    <MessageRow
      msg={msg()}
      mine={false}
      author="Eve"
      handle=""
      continued={false}
      me="u1"
      quote={null}
      editing={false}
      highlighted={false}
      actions={actions}
      {...over}
    />
  );
}

let host: HTMLElement;
afterEach(() => {
  render(null, host);
  host.remove();
});

function mount(vnode: preact.ComponentChild) {
  host = document.createElement('div');
  document.body.appendChild(host);
  render(vnode, host);
  return host;
}

describe('MessageRow', () => {
  it('renders bodies and names as text, links as safe anchors', () => {
    const el = mount(messageRow({ msg: msg({ body: '<img src=x onerror=alert(1)> see https://example.com/p' }), author: '<b>Eve</b>' }));
    const row = el.querySelector('[data-testid="message"]')!;
    expect(row.getAttribute('data-seq')).toBe('7');
    expect(row.getAttribute('data-status')).toBe('sent');
    expect(row.getAttribute('data-mine')).toBe('false');
    expect(el.querySelector('img')).toBeNull();
    expect(el.querySelector('b')).toBeNull();
    expect(el.querySelector('[data-testid="message-author"]')!.textContent).toBe('<b>Eve</b>');
    const a = el.querySelector('[data-testid="message-body"] a')!;
    expect(a.getAttribute('href')).toBe('https://example.com/p');
    expect(a.getAttribute('rel')).toBe('noopener noreferrer');
    expect(a.getAttribute('target')).toBe('_blank');
    // only the author can edit or delete
    expect(el.querySelector('[data-testid="message-edit"]')).toBeNull();
    expect(el.querySelector('[data-testid="message-delete"]')).toBeNull();
  });

  it('shows edits, tombstones and reactions', () => {
    const el = mount(messageRow({ msg: msg({ edit_number: 1, reactions: { '👍': ['u1', 'u3'] } }), mine: true, author: 'Me' }));
    expect(el.querySelector('[data-testid="message-edited"]')).not.toBeNull();
    const r = el.querySelector('[data-testid="reaction"]')!;
    expect(r.getAttribute('data-emoji')).toBe('👍');
    expect(r.getAttribute('data-mine')).toBe('true');
    expect(r.textContent).toContain('2');
    expect(el.querySelector('[data-testid="message-edit"]')).not.toBeNull();
    render(messageRow({ msg: msg({ deleted: true, body: null }), mine: true, author: 'Me' }), host);
    expect(el.querySelector('[data-testid="message-deleted"]')).not.toBeNull();
    expect(el.querySelector('[data-testid="message-body"]')).toBeNull();
  });

  it('a failed pending message offers retry and has no seq', () => {
    let retried = '';
    const el = mount(
      <PendingRow
        p={{ client_msg_id: 'c1', body: 'x', reply_to: null, status: 'failed', created_at: '2026-01-01T10:00:00Z' }}
        author="Me"
        handle=""
        quote={null}
        actions={{ ...actions, retry: (id) => (retried = id) }}
      />,
    );
    const row = el.querySelector('[data-testid="message"]')!;
    expect(row.getAttribute('data-status')).toBe('failed');
    expect(row.hasAttribute('data-seq')).toBe(false);
    expect(row.getAttribute('data-client-msg-id')).toBe('c1');
    (el.querySelector('[data-testid="message-retry"]') as HTMLButtonElement).click();
    expect(retried).toBe('c1');
  });
});
