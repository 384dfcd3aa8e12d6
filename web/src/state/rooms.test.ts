import { describe, expect, it } from 'vitest';
import type { EventFrame, MemberUpdatedFrame, NotificationFrame } from '../types';
import {
  addRoom,
  applyMemberUpdate,
  applyNotification,
  applyRoomEvent,
  emptyRooms,
  markRead,
  mergeRoomList,
  removeRoom,
  replaceRoom,
  roomKey,
  roomLabel,
  setLevel,
  totalMentions,
  totalUnread,
} from './rooms';
import { myRoom } from '../testing';

const room = myRoom;

function msgEv(roomId: string, version: number, seq: number, sender: string, body = 'hi', extra: Record<string, unknown> = {}): EventFrame {
  return {
    type: 'message_sent',
    room_id: roomId,
    version,
    position: version * 10,
    data: { seq, sender_id: sender, message_id: `m${seq}`, body, reply_to: null, ...extra },
  };
}

function notification(roomId: string, seq: number, reason: NotificationFrame['reason'], sender = 'bob'): NotificationFrame {
  return { type: 'notification', room_id: roomId, reason, message_id: `m${seq}`, seq, sender_id: sender, body: `body ${seq}`, position: 1000 + seq };
}

const ctx = (now: string, viewing: string | null = null) => ({ me: 'me', viewing, now });

describe('ordering', () => {
  it('orders by last activity, newest first', () => {
    const { state } = mergeRoomList(
      emptyRooms(),
      [
        room('a', { created_at: '2026-01-01T00:00:00Z' }),
        room('b', { last_message: { seq: 1, message_id: 'x', sender_id: 'u', body: 'x', deleted: false, sent_at: '2026-01-03T00:00:00Z' } }),
        room('c', { created_at: '2026-01-02T00:00:00Z' }),
      ],
      0,
    );
    expect(state.order).toEqual(['b', 'c', 'a']);
  });

  it('a new message moves its room to the top', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { created_at: '2026-01-02T00:00:00Z' }), room('b')], 0);
    expect(state.order).toEqual(['a', 'b']);
    state = applyRoomEvent(state, msgEv('b', 3, 1, 'bob'), ctx('2026-02-01T00:00:00Z')).state;
    expect(state.order).toEqual(['b', 'a']);
    expect(state.byId.b!.last_message).toMatchObject({ body: 'hi', seq: 1 });
  });
});

describe('unread counts', () => {
  it('counts other people’s messages in rooms not in view, once each', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a'), room('b')], 0);
    const e = msgEv('a', 3, 1, 'bob');
    state = applyRoomEvent(state, e, ctx('2026-02-01T00:00:00Z')).state;
    state = applyRoomEvent(state, e, ctx('2026-02-01T00:00:00Z')).state; // duplicate frame
    expect(state.byId.a!.unread_count).toBe(1);
    state = applyRoomEvent(state, msgEv('a', 4, 2, 'me'), ctx('2026-02-01T00:00:01Z')).state; // mine
    expect(state.byId.a!.unread_count).toBe(1);
    state = applyRoomEvent(state, msgEv('b', 3, 1, 'bob'), ctx('2026-02-01T00:00:02Z', 'b')).state; // in view
    expect(state.byId.b!.unread_count).toBe(0);
    expect(totalUnread(state)).toBe(1);
  });

  it('resets when the read marker moves (by this tab or another)', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 5, unread_count: 3, read_seq: 2 })], 0);
    state = markRead(state, 'a', 5);
    expect(state.byId.a!).toMatchObject({ unread_count: 0, read_seq: 5 });
    state = markRead(state, 'a', 3); // never back
    expect(state.byId.a!.read_seq).toBe(5);

    let s2 = mergeRoomList(emptyRooms(), [room('a', { last_seq: 5, unread_count: 3, read_seq: 2, version: 9 })], 0).state;
    s2 = applyRoomEvent(
      s2,
      { type: 'read_marker_moved', room_id: 'a', version: 10, position: 100, data: { seq: 5, user_id: 'me' } },
      ctx('2026-02-01T00:00:00Z'),
    ).state;
    expect(s2.byId.a!.unread_count).toBe(0);
  });

  it('someone else’s read marker changes nothing of mine', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 5, unread_count: 3, read_seq: 2 })], 0);
    state = applyRoomEvent(
      state,
      { type: 'read_marker_moved', room_id: 'a', version: 3, position: 30, data: { seq: 5, user_id: 'bob' } },
      ctx('2026-02-01T00:00:00Z'),
    ).state;
    expect(state.byId.a!.unread_count).toBe(3);
  });

  it('a poll older than the feed does not undo it; a newer one wins', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { version: 2 })], 0);
    state = applyRoomEvent(state, msgEv('a', 3, 1, 'bob'), ctx('2026-02-01T00:00:00Z')).state;
    state = mergeRoomList(state, [room('a', { version: 2, unread_count: 0 })], 1).state;
    expect(state.byId.a!.unread_count).toBe(1);
    state = mergeRoomList(state, [room('a', { version: 5, unread_count: 4, last_seq: 4 })], 2).state;
    expect(state.byId.a!.unread_count).toBe(4);
    // and the feed then drops what the poll already counted
    state = applyRoomEvent(state, msgEv('a', 4, 2, 'bob'), ctx('2026-02-01T00:00:01Z')).state;
    expect(state.byId.a!.unread_count).toBe(4);
  });
});

describe('membership', () => {
  it('a poll adds new rooms and drops rooms no longer listed', () => {
    let r = mergeRoomList(emptyRooms(), [room('a'), room('b')], 0);
    r = mergeRoomList(r.state, [room('b'), room('c')], 1);
    expect(r.added).toEqual(['c']);
    expect(r.removed).toEqual(['a']);
    expect(Object.keys(r.state.byId).sort()).toEqual(['b', 'c']);
  });

  it('a poll sent before a local join does not remove the room, nor one before a leave re-add it', () => {
    let state = mergeRoomList(emptyRooms(), [room('a')], 0).state;
    state = addRoom(state, room('new'), 100);
    let r = mergeRoomList(state, [room('a')], 50); // sent before the join
    expect(r.removed).toEqual([]);
    expect(r.state.byId.new).toBeDefined();
    state = removeRoom(r.state, 'a', 200);
    r = mergeRoomList(state, [room('a'), room('new')], 150); // sent before the leave
    expect(r.state.byId.a).toBeUndefined();
    r = mergeRoomList(r.state, [room('a'), room('new')], 300); // joined again since
    expect(r.state.byId.a).toBeDefined();
  });

  it('a reload after a resync replaces the entry even when older by version', () => {
    let state = mergeRoomList(emptyRooms(), [room('a', { version: 9, unread_count: 5 }), room('b')], 0).state;
    state = replaceRoom(state, room('a', { version: 7, unread_count: 1, last_message: { seq: 3, message_id: 'm', sender_id: 'u', body: 'x', deleted: false, sent_at: '2026-03-01T00:00:00Z' } }));
    expect(state.byId.a).toMatchObject({ version: 7, unread_count: 1 });
    expect(state.order[0]).toBe('a');
    expect(replaceRoom(state, room('zzz'))).toBe(state);
  });

  it('being kicked removes the room', () => {
    const state = mergeRoomList(emptyRooms(), [room('a')], 0).state;
    const r = applyRoomEvent(
      state,
      { type: 'member_kicked', room_id: 'a', version: 3, position: 30, data: { user_id: 'me', kicked_by: 'owner' } },
      ctx('2026-02-01T00:00:00Z'),
    );
    expect(r.removedMe).toBe(true);
    expect(r.state.byId.a).toBeUndefined();
  });

  it('being banned removes the room; a ban of someone else changes only the members', () => {
    const state = mergeRoomList(emptyRooms(), [room('a')], 0).state;
    const other = applyRoomEvent(
      state,
      { type: 'member_banned', room_id: 'a', version: 3, position: 30, data: { user_id: 'troll', banned_by: 'owner' } },
      ctx('2026-02-01T00:00:00Z'),
    );
    expect(other.removedMe).toBeFalsy();
    expect(other.membersChanged).toBe(true);
    expect(other.state.byId.a).toBeDefined();
    const me = applyRoomEvent(
      other.state,
      { type: 'member_banned', room_id: 'a', version: 4, position: 40, data: { user_id: 'me', banned_by: 'admin', as_admin: true } },
      ctx('2026-02-01T00:00:00Z'),
    );
    expect(me.removedMe).toBe(true);
    expect(me.state.byId.a).toBeUndefined();
  });
});

describe('labels', () => {
  it('direct rooms are named after the other person', () => {
    const d = room('d', { kind: 'direct', name: '', other_user: { user_id: 'u', username: 'bob', display_name: 'Bob B' } });
    expect(roomLabel(d)).toBe('Bob B');
    expect(roomKey(d)).toBe('bob');
    expect(roomKey(room('g', { name: 'general' }))).toBe('general');
  });
});

describe('mentions', () => {
  it('a poll gives each room its mention count and level (defaults from older servers)', () => {
    const { state } = mergeRoomList(
      emptyRooms(),
      [
        room('g', { unread_mentions: 2, notifications: 'all' }),
        room('g2'),
        room('d', { kind: 'direct', other_user: { user_id: 'u', username: 'bob', display_name: 'Bob' } }),
      ],
      0,
    );
    expect(state.byId.g!).toMatchObject({ unread_mentions: 2, notifications: 'all' });
    expect(state.byId.g2!).toMatchObject({ unread_mentions: 0, notifications: 'mentions' });
    expect(state.byId.d!.notifications).toBe('all');
    expect(totalMentions(state)).toBe(2);
  });

  it('counts live messages that mention me, by name or @room from someone else, once each', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a'), room('b')], 0);
    const t = ctx('2026-02-01T00:00:00Z');
    const named = msgEv('a', 3, 1, 'bob', 'hi @me', { mentions: ['someone', 'me'] });
    state = applyRoomEvent(state, named, t).state;
    state = applyRoomEvent(state, named, t).state; // duplicate frame
    state = applyRoomEvent(state, msgEv('a', 4, 2, 'bob', 'everyone!', { mentions_room: true }), t).state;
    state = applyRoomEvent(state, msgEv('a', 5, 3, 'bob', 'not you', { mentions: ['someone'] }), t).state;
    state = applyRoomEvent(state, msgEv('a', 6, 4, 'me', '@room from me', { mentions_room: true }), t).state;
    expect(state.byId.a!).toMatchObject({ unread_count: 3, unread_mentions: 2 });
    // in view: read as it arrives
    state = applyRoomEvent(state, msgEv('b', 3, 1, 'bob', 'hi', { mentions: ['me'] }), ctx('2026-02-01T00:00:01Z', 'b')).state;
    expect(state.byId.b!).toMatchObject({ unread_count: 0, unread_mentions: 0 });
    expect(totalMentions(state)).toBe(2);
  });

  it('reset with the read marker, like the unread count', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 6, read_seq: 2, unread_count: 4, unread_mentions: 3, version: 9 })], 0);
    // part of it read: at most what is left unread
    state = markRead(state, 'a', 5);
    expect(state.byId.a!).toMatchObject({ unread_count: 1, unread_mentions: 1 });
    state = markRead(state, 'a', 6);
    expect(state.byId.a!).toMatchObject({ unread_count: 0, unread_mentions: 0 });

    let s2 = mergeRoomList(emptyRooms(), [room('a', { last_seq: 6, read_seq: 2, unread_count: 4, unread_mentions: 3, version: 9 })], 0).state;
    s2 = applyRoomEvent(s2, { type: 'read_marker_moved', room_id: 'a', version: 10, position: 100, data: { seq: 6, user_id: 'bob' } }, ctx('2026-02-01T00:00:00Z')).state;
    expect(s2.byId.a!.unread_mentions).toBe(3);
    s2 = applyRoomEvent(s2, { type: 'read_marker_moved', room_id: 'a', version: 11, position: 110, data: { seq: 6, user_id: 'me', private: true } }, ctx('2026-02-01T00:00:00Z')).state;
    expect(s2.byId.a!).toMatchObject({ unread_count: 0, unread_mentions: 0, read_seq: 6 });
  });

  it('my notification level follows the feed (others’ changes are not mine)', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { version: 2 })], 0);
    state = applyRoomEvent(state, { type: 'notification_level_changed', room_id: 'a', version: 3, position: 30, data: { user_id: 'bob', level: 'none' } }, ctx('2026-02-01T00:00:00Z')).state;
    expect(state.byId.a!.notifications).toBe('mentions');
    state = applyRoomEvent(state, { type: 'notification_level_changed', room_id: 'a', version: 4, position: 40, data: { user_id: 'me', level: 'all' } }, ctx('2026-02-01T00:00:00Z')).state;
    expect(state.byId.a!).toMatchObject({ notifications: 'all', version: 4 });
    expect(setLevel(state, 'a', 'none').byId.a!.notifications).toBe('none');
    expect(setLevel(state, 'a', 'all')).toBe(state);
    expect(setLevel(state, 'zzz', 'all')).toBe(state);
  });
});

describe('notification frames', () => {
  const t = ctx('2026-02-01T00:00:00Z');

  it('bump the counts of a room the socket does not follow, once per message', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 4, read_seq: 4, version: 7 })], 0);
    let r = applyNotification(state, notification('a', 5, 'mention'), t);
    expect(r).toMatchObject({ known: true, counted: true });
    state = r.state;
    expect(state.byId.a!).toMatchObject({ unread_count: 1, unread_mentions: 1, last_seq: 5, version: 7 });
    expect(state.byId.a!.last_message).toMatchObject({ seq: 5, body: 'body 5', sender_id: 'bob' });
    r = applyNotification(state, notification('a', 5, 'mention'), t); // again
    expect(r.counted).toBe(false);
    expect(r.state).toBe(state);
    state = applyNotification(state, notification('a', 6, 'message'), t).state;
    state = applyNotification(state, notification('a', 7, 'room_mention'), t).state;
    expect(state.byId.a!).toMatchObject({ unread_count: 3, unread_mentions: 2 });
  });

  it('the same message arriving later as an event is not counted again; an earlier one is', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 4, read_seq: 4, version: 7 })], 0);
    state = applyNotification(state, notification('a', 6, 'mention'), t).state;
    // the subscription catches up: seq 5 (no notification for it) and seq 6
    state = applyRoomEvent(state, msgEv('a', 8, 5, 'bob', 'plain'), t).state;
    state = applyRoomEvent(state, msgEv('a', 9, 6, 'bob', 'body 6', { mentions: ['me'] }), t).state;
    expect(state.byId.a!).toMatchObject({ unread_count: 2, unread_mentions: 1, last_seq: 6 });
    expect(state.byId.a!.last_message?.seq).toBe(6);
  });

  it('what the entry has already, or has read, or is on screen, is not counted', () => {
    const { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 5, read_seq: 3, unread_count: 2, version: 7 })], 0);
    expect(applyNotification(state, notification('a', 5, 'mention'), t).state).toBe(state); // a poll counted it
    expect(applyNotification(state, notification('a', 6, 'mention', 'me'), t).state).toBe(state);
    const viewing = applyNotification(state, notification('a', 6, 'mention'), ctx('2026-02-01T00:00:00Z', 'a'));
    expect(viewing.counted).toBe(false);
    expect(viewing.state.byId.a!).toMatchObject({ unread_count: 2, unread_mentions: 0, last_seq: 6 });
  });

  it('a room the list does not know is reported, not added', () => {
    const { state } = mergeRoomList(emptyRooms(), [room('a')], 0);
    const r = applyNotification(state, notification('new', 1, 'direct'), t);
    expect(r).toMatchObject({ known: false, counted: false });
    expect(r.state).toBe(state);
  });

  it('a newer poll replaces the counts (it counted the notified messages)', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 4, read_seq: 4, version: 7 })], 0);
    state = applyNotification(state, notification('a', 5, 'mention'), t).state;
    state = mergeRoomList(state, [room('a', { last_seq: 5, read_seq: 4, version: 8, unread_count: 1, unread_mentions: 1 })], 1).state;
    expect(state.byId.a!).toMatchObject({ unread_count: 1, unread_mentions: 1 });
    expect(state.byId.a!.notified).toBeUndefined();
  });
});

describe('member_updated', () => {
  const last = (sender: string, body: string) => ({ seq: 4, message_id: 'm4', sender_id: sender, sender_username: sender, sender_display_name: sender, body, deleted: false, sent_at: '2026-01-03T00:00:00Z' });
  const bob = { user_id: 'bob', username: 'bob', display_name: 'Bob' };
  const list = () =>
    mergeRoomList(
      emptyRooms(),
      [
        room('g', { last_message: last('bob', 'my words'), version: 7, position: 70 }),
        room('h', { last_message: last('bob', 'elsewhere'), version: 3, position: 30 }),
        room('dm', { kind: 'direct', other_user: bob, last_message: last('carol', 'not bob') }),
      ],
      0,
    ).state;
  const upd = (over: Partial<MemberUpdatedFrame> = {}): MemberUpdatedFrame => ({ type: 'member_updated', room_id: 'g', user_id: 'bob', position: 500, display_name: 'Robert', ...over });

  it('a new name shows wherever the list names the user; no version or position moves', () => {
    const before = list();
    const s = applyMemberUpdate(before, upd());
    expect(roomLabel(s.byId.dm!)).toBe('Robert');
    expect(s.byId.dm!.other_user).toEqual({ ...bob, display_name: 'Robert' });
    expect(s.byId.g!.last_message).toMatchObject({ sender_display_name: 'Robert', sender_username: 'bob', body: 'my words' });
    expect(s.byId.h!.last_message).toMatchObject({ sender_display_name: 'Robert', body: 'elsewhere' });
    for (const id of ['g', 'h', 'dm']) expect([s.byId[id]!.version, s.byId[id]!.position]).toEqual([before.byId[id]!.version, before.byId[id]!.position]);
    expect(s.order).toEqual(before.order);
    // nothing more to change
    expect(applyMemberUpdate(s, upd())).toBe(s);
    // '' is the username again
    expect(roomLabel(applyMemberUpdate(s, upd({ display_name: '' })).byId.dm!)).toBe('bob');
  });

  it("an avatar's frame gives a direct room's other person the picture and leaves every name alone", () => {
    const before = list();
    const pic = { type: 'member_updated', room_id: 'g', user_id: 'bob', position: 501, avatar_url: '/v1/users/bob/avatar?v=1' } as MemberUpdatedFrame;
    const s = applyMemberUpdate(before, pic);
    expect(s.byId.dm!.other_user).toEqual({ ...bob, avatar_url: '/v1/users/bob/avatar?v=1' });
    expect(roomLabel(s.byId.dm!)).toBe('Bob');
    expect(s.byId.g).toBe(before.byId.g);
    expect(s.byId.h).toBe(before.byId.h);
    expect(applyMemberUpdate(s, pic)).toBe(s);
    const removed = applyMemberUpdate(s, { ...pic, avatar_url: null });
    expect(removed.byId.dm!.other_user!.avatar_url).toBeNull();
  });

  it("an erasure also turns the user's last message in the frame's room into \"[erased]\"", () => {
    const s = applyMemberUpdate(list(), upd({ display_name: '[erased]', username: 'erased-00ff', erased: true }));
    expect(s.byId.g!.last_message).toMatchObject({ body: '[erased]', sender_display_name: '[erased]', sender_username: 'erased-00ff', seq: 4 });
    // other rooms: the name now, their own frame erases the text
    expect(s.byId.h!.last_message).toMatchObject({ body: 'elsewhere', sender_display_name: '[erased]' });
    expect(s.byId.dm!.other_user).toEqual({ user_id: 'bob', username: 'erased-00ff', display_name: '[erased]' });
    expect(s.byId.dm!.last_message!.body).toBe('not bob');
    expect(s.byId.g!.version).toBe(7);
  });

  it('changes nothing for a user the list does not show', () => {
    const s = list();
    expect(applyMemberUpdate(s, upd({ user_id: 'dave' }))).toBe(s);
  });
});

describe('retention', () => {
  const expired = (roomId: string, version: number, upTo: number): EventFrame => ({
    type: 'messages_expired',
    room_id: roomId,
    version,
    position: version * 10,
    data: { up_to_seq: upTo },
  });

  it('an expired last message is forgotten and unread counts are read again from the server', () => {
    let { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 3, read_seq: 1, unread_count: 2 })], 0);
    state = applyRoomEvent(state, msgEv('a', 4, 4, 'bob'), ctx('2026-02-01T00:00:00Z')).state;
    let r = applyRoomEvent(state, expired('a', 5, 3), ctx('2026-02-01T00:00:01Z'));
    expect(r.state.byId.a!.last_message?.seq).toBe(4);
    expect(r.state.byId.a!.expired_up_to).toBe(3);
    expect(r.stale).toBe(true);
    r = applyRoomEvent(r.state, expired('a', 6, 4), ctx('2026-02-01T00:00:02Z'));
    expect(r.state.byId.a!.last_message).toBeNull();
  });

  it('an expiry of read messages needs no read from the server', () => {
    const { state } = mergeRoomList(emptyRooms(), [room('a', { last_seq: 3, read_seq: 3, unread_count: 0 })], 0);
    const r = applyRoomEvent(state, expired('a', 5, 2), ctx('2026-02-01T00:00:01Z'));
    expect(r.stale).toBeUndefined();
  });

  it('a retention change is shown', () => {
    const { state } = mergeRoomList(emptyRooms(), [room('a')], 0);
    const r = applyRoomEvent(
      state,
      { type: 'room_retention_changed', room_id: 'a', version: 9, position: 90, data: { days: 30, changed_by: 'bob' } },
      ctx('2026-02-01T00:00:01Z'),
    );
    expect(r.state.byId.a!.retention_days).toBe(30);
  });
});
