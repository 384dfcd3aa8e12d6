import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { noActions } from '../testing';
import type { TlMessage } from '../state/timeline';
import { seenLabel } from './MessageList';
import { MessageRow, PendingRow, type RowActions, type RowProps } from './MessageRow';

const actions: RowActions = noActions;

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

  it('the edit box counts characters as the server does and refuses more than its limit', async () => {
    const edits: string[] = [];
    const el = mount(
      messageRow({
        msg: msg({ sender_id: 'u1', body: 'hi' }),
        mine: true,
        editing: true,
        maxChars: 600,
        actions: { ...actions, edit: async (_m, body) => void edits.push(body) },
      }),
    );
    const input = el.querySelector<HTMLTextAreaElement>('[data-testid="edit-input"]')!;
    const save = el.querySelector<HTMLButtonElement>('[data-testid="edit-save"]')!;
    const type = async (value: string) => {
      input.value = value;
      input.dispatchEvent(new Event('input', { bubbles: true }));
      await new Promise((r) => setTimeout(r, 0));
    };
    // 600 emoji are 1,200 UTF-16 units but 600 characters: allowed, the count shown.
    await type(`  ${'😀'.repeat(600)}  `);
    const count = () => el.querySelector('[data-testid="edit-count"]');
    expect(count()?.textContent).toBe('600 / 600');
    expect(count()?.classList.contains('form-error')).toBe(false);
    expect(save.disabled).toBe(false);
    await type('😀'.repeat(601));
    expect(count()?.textContent).toBe('601 / 600');
    expect(count()?.classList.contains('form-error')).toBe(true);
    expect(save.disabled).toBe(true);
    input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    await new Promise((r) => setTimeout(r, 0));
    expect(edits).toEqual([]);
    // Far from the limit, no count.
    await type('short');
    expect(count()).toBeNull();
    save.click();
    await new Promise((r) => setTimeout(r, 0));
    expect(edits).toEqual(['short']);
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

  it('a message mentioning me is marked, its @names emphasised (mine apart), never as HTML', () => {
    const el = mount(messageRow({ msg: msg({ body: 'hey @alice and @bob, see <b>x</b>' }), mentionsMe: true, myUsername: 'alice' }));
    const row = el.querySelector('[data-testid="message"]')!;
    expect(row.classList.contains('mention-me')).toBe(true);
    expect(row.getAttribute('data-mention-me')).toBe('true');
    expect(row.getAttribute('aria-label')).toContain('mentions you');
    const names = [...el.querySelectorAll('[data-testid="mention"]')].map((m) => [m.textContent, m.classList.contains('mention-self')]);
    expect(names).toEqual([
      ['@alice', true],
      ['@bob', false],
    ]);
    expect(el.querySelector('[data-testid="message-body"]')!.textContent).toBe('hey @alice and @bob, see <b>x</b>');
    expect(el.querySelector('b')).toBeNull();
    render(messageRow({ msg: msg({ body: 'plain' }) }), host);
    expect(el.querySelector('[data-testid="message"]')!.classList.contains('mention-me')).toBe(false);
    expect(el.querySelector('[data-testid="message"]')!.hasAttribute('data-mention-me')).toBe(false);
  });

  it('"seen by" shows under one’s own message only', () => {
    const el = mount(messageRow({ mine: true, author: 'Me', seenBy: 'Alice and Bob', seenIds: 'ua ub' }));
    const seen = el.querySelector('[data-testid="message-seen-by"]')!;
    expect(seen.textContent).toBe('Seen by Alice and Bob');
    expect(seen.getAttribute('data-user-ids')).toBe('ua ub');
    render(messageRow({ mine: false, seenBy: 'Alice', seenIds: 'ua' }), host);
    expect(el.querySelector('[data-testid="message-seen-by"]')).toBeNull();
    render(messageRow({ mine: true, seenBy: '' }), host);
    expect(el.querySelector('[data-testid="message-seen-by"]')).toBeNull();
  });
});

describe('seenLabel', () => {
  it('names up to three readers, then counts the others', () => {
    expect(seenLabel([])).toBe('');
    expect(seenLabel(['Alice'])).toBe('Alice');
    expect(seenLabel(['Alice', 'Bob'])).toBe('Alice and Bob');
    expect(seenLabel(['Alice', 'Bob', 'Carol'])).toBe('Alice, Bob and Carol');
    expect(seenLabel(['Alice', 'Bob', 'Carol', 'Dan'])).toBe('Alice, Bob, Carol and 1 other');
    expect(seenLabel(['A', 'B', 'C', 'D', 'E'])).toBe('A, B, C and 2 others');
  });
});
