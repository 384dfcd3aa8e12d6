import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { noActions } from '../testing';
import type { RoomTimeline } from '../chat';
import type { Receipts } from '../state/receipts';
import { mergePage } from '../state/timeline';
import type { Message } from '../types';
import { MessageList, type ListProps } from './MessageList';
import type { RowActions } from './MessageRow';

const actions: RowActions = noActions;

function msg(seq: number, sender_id: string, body: string): Message {
  return {
    seq,
    message_id: `m${seq}`,
    sender_id,
    body,
    deleted: false,
    reply_to: null,
    edited_at: null,
    edit_number: 0,
    reactions: {},
    sent_at: `2026-01-01T10:00:${String(seq).padStart(2, '0')}Z`,
    version: seq + 10,
  };
}

const tv: RoomTimeline = {
  tl: mergePage({ messages: [], pending: [] }, [
    msg(1, 'me', 'first of mine'),
    msg(2, 'ua', 'hi @meg'),
    msg(3, 'me', 'second of mine'),
    msg(4, 'ub', '@room from a member'),
    msg(5, 'owner', '@room from the owner'),
  ]),
  loading: false,
  loadingOlder: false,
  loadingNewer: false,
  error: null,
};

const users = {
  me: { username: 'meg', display_name: 'Meg' },
  ua: { username: 'alice', display_name: 'Alice' },
  ub: { username: 'bob', display_name: 'Bob' },
};

function list(receipts: Receipts | undefined) {
  const props: ListProps = {
    roomId: 'r',
    tv,
    ephemeral: undefined,
    me: 'me',
    users,
    quotes: {},
    lastSeq: 5,
    readSeq: 5,
    jump: null,
    editing: null,
    actions,
    myUsername: 'meg',
    moderators: new Set(['owner']),
    receipts,
    maxChars: 4000,
    onSeen: () => undefined,
    onJumpDone: () => undefined,
    onLoadOlder: () => undefined,
    onLoadAfter: () => undefined,
  };
  return <MessageList {...props} />;
}

let host: HTMLElement;
afterEach(() => {
  render(null, host);
  host.remove();
});

const seenLines = () =>
  [...host.querySelectorAll('[data-testid="message"]')]
    .map((row) => [row.getAttribute('data-seq'), row.querySelector('[data-testid="message-seen-by"]')?.textContent ?? null])
    .filter(([, seen]) => seen !== null);

describe('MessageList', () => {
  it('shows who has seen my messages, and follows the receipts as they move', () => {
    host = document.createElement('div');
    document.body.appendChild(host);
    render(list(undefined), host);
    expect(seenLines()).toEqual([]);
    render(list({ ua: 2, ub: 1 }), host);
    expect(seenLines()).toEqual([['1', 'Seen by Alice and Bob']]);
    render(list({ ua: 5, ub: 1 }), host);
    expect(seenLines()).toEqual([
      ['1', 'Seen by Bob'],
      ['3', 'Seen by Alice'],
    ]);
  });

  it('highlights the messages that mention me (@room only from a moderator)', () => {
    host = document.createElement('div');
    document.body.appendChild(host);
    render(list(undefined), host);
    const marked = [...host.querySelectorAll('[data-testid="message"][data-mention-me="true"]')].map((r) => r.getAttribute('data-seq'));
    expect(marked).toEqual(['2', '5']);
  });
});
