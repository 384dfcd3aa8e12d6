// The controller with mentions, notification frames, notification levels and read receipts:
// a fake API and a fake WebSocket feed it, a fake Notification records what it raises.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Chat } from './chat';
import { FakeWs, fakeApi, myRoom, settle, startedChat } from './testing';
import type { MyRoom, NotificationLevel, Receipt } from './types';

const ME = 'u-me';
const BOB = 'u-bob';

function room(id: string, over: Partial<MyRoom> = {}): MyRoom {
  return myRoom(id, { owner_id: BOB, version: 5, position: 50, ...over });
}

interface Raised {
  title: string;
  body: string;
  tag: string;
  instance: FakeNotification;
}

class FakeNotification {
  static permission: NotificationPermission = 'granted';
  static raised: Raised[] = [];
  static requestPermission = async () => FakeNotification.permission;
  onclick: (() => void) | null = null;
  closed = false;
  constructor(title: string, opts: { body: string; tag: string }) {
    FakeNotification.raised.push({ title, body: opts.body, tag: opts.tag, instance: this });
  }
  close() {
    this.closed = true;
  }
}

/** What the controller uses of the API, answering from `rooms` and `receipts`. */
function attentionApi(rooms: MyRoom[], receipts: Record<string, Receipt[]> = {}) {
  return fakeApi(ME, (calls) => ({
    rooms: async (minPosition?: number) => {
      calls.push(minPosition ? `rooms after ${minPosition}` : 'rooms');
      return { data: { rooms }, status: 200, epoch: 1 };
    },
    members: async (roomId: string) => {
      calls.push(`members ${roomId}`);
      return [
        { user_id: ME, username: 'me', display_name: 'Me', role: 'member', joined_at: null },
        { user_id: BOB, username: 'bob', display_name: 'Bob', role: 'owner', joined_at: null },
      ];
    },
    messages: async () => ({ data: { messages: [] }, status: 200, epoch: 1 }),
    receipts: async (roomId: string) => {
      calls.push(`receipts ${roomId}`);
      return receipts[roomId] ?? [];
    },
    markRead: async (roomId: string, seq: number) => {
      calls.push(`read ${roomId} ${seq}`);
      return { seq, version: 0, position: null };
    },
    setNotificationLevel: async (roomId: string, level: NotificationLevel) => {
      calls.push(`level ${roomId} ${level}`);
      return { room_id: roomId, level, version: 9, position: 90 };
    },
    setPrivateReceipts: async (priv: boolean) => {
      calls.push(`private ${priv}`);
      return { private: priv, position: 91 };
    },
  }));
}

/** A signed-in controller, its socket open and subscribed to every listed room. */
async function started(rooms: MyRoom[], receipts: Record<string, Receipt[]> = {}) {
  const fake = attentionApi(rooms, receipts);
  const { chat, ws } = await startedChat(fake, rooms);
  chats.push(chat);
  return { chat, ws, calls: fake.calls };
}

function sent(roomId: string, version: number, seq: number, sender: string, body: string, extra: Record<string, unknown> = {}) {
  return {
    type: 'message_sent',
    room_id: roomId,
    version,
    position: version * 10,
    occurred_at: '2026-02-01T00:00:00Z',
    data: { seq, message_id: `m${seq}`, sender_id: sender, body, reply_to: null, ...extra },
  };
}

let chats: Chat[] = [];

beforeEach(() => {
  vi.stubGlobal('WebSocket', FakeWs);
  vi.stubGlobal('Notification', FakeNotification);
  FakeNotification.permission = 'granted';
  FakeNotification.raised = [];
  location.hash = '';
  chats = [];
});

afterEach(() => {
  for (const c of chats) c.stop();
  vi.unstubAllGlobals();
});

async function world(rooms: MyRoom[], receipts: Record<string, Receipt[]> = {}) {
  const w = await started(rooms, receipts);
  chats.push(w.chat);
  return w;
}

describe('Chat: mentions in followed rooms', () => {
  it('a live message naming me counts on the mention badge and notifies; reading clears both counts', async () => {
    const { chat, ws } = await world([room('g'), room('other')]);
    ws.frame(sent('g', 6, 1, BOB, 'hi @me', { mentions: [ME] }));
    ws.frame(sent('g', 7, 2, BOB, 'and more'));
    expect(chat.state.rooms.byId.g!).toMatchObject({ unread_count: 2, unread_mentions: 1 });
    // the room's level is "mentions" (a group room's default): only the mention notifies
    expect(FakeNotification.raised.map((n) => [n.title, n.body, n.tag])).toEqual([['Someone mentioned you in g', 'hi @me', 'm1']]);

    ws.frame({ type: 'read_marker_moved', room_id: 'g', version: 8, position: 80, data: { user_id: ME, seq: 2 } });
    expect(chat.state.rooms.byId.g!).toMatchObject({ unread_count: 0, unread_mentions: 0 });
  });

  it('@room from a moderator counts for everyone but its sender', async () => {
    const { chat, ws } = await world([room('g')]);
    ws.frame(sent('g', 6, 1, BOB, '@room meeting', { mentions_room: true }));
    ws.frame(sent('g', 7, 2, ME, '@room me too', { mentions_room: true }));
    expect(chat.state.rooms.byId.g!).toMatchObject({ unread_count: 1, unread_mentions: 1 });
    expect(FakeNotification.raised.map((n) => n.title)).toEqual(['Someone mentioned @room in g']);
  });

  it('the level decides which messages notify: all, mentions (and direct rooms), none', async () => {
    const { chat, ws } = await world([
      room('all', { notifications: 'all' }),
      room('none', { notifications: 'none' }),
      room('dm', { kind: 'direct', other_user: { user_id: BOB, username: 'bob', display_name: 'Bob' } }),
    ]);
    ws.frame(sent('all', 6, 1, BOB, 'plain'));
    ws.frame(sent('none', 6, 1, BOB, 'hi @me', { mentions: [ME] }));
    ws.frame(sent('dm', 6, 1, BOB, 'psst'));
    expect(FakeNotification.raised.map((n) => n.body)).toEqual(['plain', 'psst']);
    expect(FakeNotification.raised[1]!.title).toBe('Bob');
    // counts do not depend on the level
    expect(chat.state.rooms.byId.none!).toMatchObject({ unread_count: 1, unread_mentions: 1 });
  });

  it('nothing is raised without permission, nor for the room on screen', async () => {
    const { chat, ws } = await world([room('g')]);
    chat.setActive('g');
    ws.frame(sent('g', 6, 1, BOB, 'hi @me', { mentions: [ME] }));
    FakeNotification.permission = 'default';
    chat.setActive(null);
    ws.frame(sent('g', 7, 2, BOB, 'hi again @me', { mentions: [ME] }));
    expect(FakeNotification.raised).toEqual([]);
    // on screen: read as it arrived; the second one is unread
    expect(chat.state.rooms.byId.g!).toMatchObject({ unread_count: 1, unread_mentions: 1 });
  });
});

describe('Chat: notification frames', () => {
  it('bump the counts of a room not followed, once, and notify with the message id as tag; a click opens the room', async () => {
    const { chat, ws } = await world([room('quiet', { last_seq: 3, read_seq: 3 })]);
    const frame = { type: 'notification', room_id: 'quiet', reason: 'mention', message_id: 'mid-4', seq: 4, sender_id: BOB, body: 'look @me', position: 400 };
    ws.frame(frame);
    ws.frame(frame);
    expect(chat.state.rooms.byId.quiet!).toMatchObject({ unread_count: 1, unread_mentions: 1, last_seq: 4 });
    expect(FakeNotification.raised.map((n) => [n.title, n.body, n.tag])).toEqual([
      ['Someone mentioned you in quiet', 'look @me', 'mid-4'],
      ['Someone mentioned you in quiet', 'look @me', 'mid-4'], // same tag: the browser shows one
    ]);
    const focus = vi.spyOn(window, 'focus').mockImplementation(() => undefined);
    FakeNotification.raised[0]!.instance.onclick?.();
    expect(focus).toHaveBeenCalled();
    expect(location.hash).toBe('#/rooms/quiet');
    expect(FakeNotification.raised[0]!.instance.closed).toBe(true);

    ws.frame({ ...frame, reason: 'message', message_id: 'mid-5', seq: 5, body: 'plain' });
    expect(chat.state.rooms.byId.quiet!).toMatchObject({ unread_count: 2, unread_mentions: 1 });
  });

  it('a frame for a room the list does not know yet reads the room list again, at least as new as the message', async () => {
    const { calls, ws } = await world([room('g')]);
    ws.frame({ type: 'notification', room_id: 'new-dm', reason: 'direct', message_id: 'x', seq: 1, sender_id: BOB, body: 'hello', position: 10 });
    ws.frame({ type: 'notification', room_id: 'new-dm', reason: 'direct', message_id: 'y', seq: 2, sender_id: BOB, body: 'there', position: 12 });
    // One read for both frames, once the debounce has passed.
    await vi.waitFor(() => expect(calls.filter((c) => c.startsWith('rooms after'))).toEqual(['rooms after 12']));
    expect(FakeNotification.raised.map((n) => n.tag)).toEqual(['x', 'y']);
  });

  it('no notification for a message already read (on another device)', async () => {
    const { chat, ws } = await world([room('g', { last_seq: 4, read_seq: 4 })]);
    ws.frame({ type: 'notification', room_id: 'g', reason: 'mention', message_id: 'old', seq: 3, sender_id: BOB, body: 'old news', position: 30 });
    expect(FakeNotification.raised).toEqual([]);
    expect(chat.state.rooms.byId.g!.unread_mentions).toBe(0);
  });

  it('a malformed frame is ignored', async () => {
    const { chat, ws } = await world([room('g')]);
    const rooms = chat.state.rooms;
    ws.frame({ type: 'notification', room_id: 'g', reason: 'gossip', message_id: 'x', seq: 1, sender_id: BOB, body: 'hello', position: 10 });
    ws.frame({ type: 'notification', room_id: 'g', reason: 'mention', seq: 1 });
    expect(chat.state.rooms).toBe(rooms);
    expect(FakeNotification.raised).toEqual([]);
  });
});

describe('Chat: read receipts and settings', () => {
  it('receipts are read when a room opens, then follow read_marker_moved frames (not my own)', async () => {
    const { chat, ws, calls } = await world([room('g')], { g: [{ user_id: BOB, seq: 1 }] });
    chat.setActive('g');
    await settle();
    expect(calls).toContain('receipts g');
    expect(chat.state.receipts.g).toEqual({ [BOB]: 1 });
    ws.frame({ type: 'read_marker_moved', room_id: 'g', version: 6, position: 60, data: { user_id: BOB, seq: 3 } });
    ws.frame({ type: 'read_marker_moved', room_id: 'g', version: 7, position: 70, data: { user_id: ME, seq: 3 } });
    expect(chat.state.receipts.g).toEqual({ [BOB]: 3 });
    ws.frame({ type: 'member_left', room_id: 'g', version: 8, position: 80, data: { user_id: BOB } });
    expect(chat.state.receipts.g).toEqual({});
  });

  it('a hidden frame (another member\'s private marker) moves the version on without a resync', async () => {
    const { chat, ws, calls } = await world([room('g')], { g: [{ user_id: BOB, seq: 1 }] });
    chat.setActive('g');
    await settle();
    const before = calls.length;
    ws.frame({ type: 'hidden', room_id: 'g', version: 6, position: 60 });
    ws.frame(sent('g', 7, 2, BOB, 'after it'));
    await settle();
    expect(chat.state.rooms.byId.g!.version).toBe(7);
    expect(chat.state.receipts.g).toEqual({ [BOB]: 1 });
    // No reload: the version after the hidden one is no gap.
    expect(calls.slice(before).filter((c) => c.startsWith('rooms after') || c.startsWith('receipts'))).toEqual([]);
  });

  it('a marker that moves while the receipts are read is kept', async () => {
    const fake = attentionApi([room('g')]);
    let answer: (r: Receipt[]) => void = () => undefined;
    (fake.api as unknown as { receipts: () => Promise<Receipt[]> }).receipts = () => new Promise((r) => (answer = r));
    const { chat, ws } = await startedChat(fake, [room('g')]);
    chats.push(chat);
    chat.setActive('g');
    ws.frame({ type: 'read_marker_moved', room_id: 'g', version: 6, position: 60, data: { user_id: BOB, seq: 4 } });
    answer([{ user_id: 'u-carol', seq: 2 }]); // read before bob's marker moved
    await settle();
    expect(chat.state.receipts.g).toEqual({ [BOB]: 4, 'u-carol': 2 });
  });

  it('the notification level and the receipts privacy go to the API and into the state', async () => {
    const { chat, ws, calls } = await world([room('g')]);
    await chat.setNotificationLevel('g', 'all');
    expect(calls).toContain('level g all');
    expect(chat.state.rooms.byId.g!.notifications).toBe('all');
    // the feed's copy of it changes nothing more
    ws.frame({ type: 'notification_level_changed', room_id: 'g', version: 6, position: 60, data: { user_id: ME, level: 'all' } });
    expect(chat.state.rooms.byId.g!).toMatchObject({ notifications: 'all', version: 6 });

    await chat.loadSettings();
    expect(chat.state.me?.private_receipts).toBe(false);
    await chat.setPrivateReceipts(true);
    expect(calls).toContain('private true');
    expect(chat.state.me?.private_receipts).toBe(true);
  });
});
