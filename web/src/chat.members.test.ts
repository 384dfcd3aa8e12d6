// The controller with `member_updated` frames (a member renamed, or erased), and with the
// room's retention frames: a fake API and a fake WebSocket feed it.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from './api';
import type { Chat } from './chat';
import { FakeWs, fakeApi, myRoom, settle, startedChat } from './testing';
import type { Member, Message, MyRoom, ServerInfo } from './types';

const ME = 'u-me';
const BOB = 'u-bob';
const CAROL = 'u-carol';

function msg(seq: number, sender: string, body: string, over: Partial<Message> = {}): Message {
  return {
    seq,
    message_id: `m${seq}`,
    sender_id: sender,
    body,
    deleted: false,
    reply_to: null,
    edited_at: null,
    edit_number: 0,
    reactions: {},
    sent_at: '2026-01-01T00:00:00Z',
    version: seq + 1,
    ...over,
  };
}

const file = { attachment_id: 'a1', name: 'plans.pdf', size: 9, content_type: 'application/pdf', sha256: 'x' };

/** Two group rooms bob and carol are in with me, and a direct room with bob. */
const ROOMS: MyRoom[] = [
  myRoom('g', {
    version: 5,
    position: 50,
    last_seq: 3,
    read_seq: 3,
    last_message: { seq: 3, message_id: 'm3', sender_id: BOB, sender_username: 'bob', sender_display_name: 'Bob', body: 'see the plans', deleted: false, sent_at: '2026-01-01T00:00:00Z' },
  }),
  myRoom('h', { version: 7, position: 70 }),
  myRoom('dm', { kind: 'direct', version: 3, position: 30, other_user: { user_id: BOB, username: 'bob', display_name: 'Bob' } }),
];

const PAGES: Record<string, Message[]> = {
  g: [
    msg(1, BOB, 'hello', { reactions: { '👍': [ME] } }),
    msg(2, ME, 'hi bob'),
    msg(3, BOB, 'see the plans', { attachments: [file] }),
    msg(4, CAROL, 'nice'),
  ],
  h: [msg(1, BOB, 'in the other room')],
};

const MEMBERS: Member[] = [
  { user_id: ME, username: 'me', display_name: 'Me', role: 'member', joined_at: null },
  { user_id: BOB, username: 'bob', display_name: 'Bob', role: 'owner', joined_at: null },
  { user_id: CAROL, username: 'carol', display_name: 'Carol', role: 'member', joined_at: null },
];

const SERVER: ServerInfo = {
  retention_days: 30,
  limits: { message_chars: 4000, mentions_per_message: 50, attachments_per_message: 10, attachment_bytes: 25 << 20, avatar_bytes: 2 << 20 },
};

/** `server` answers: what `GET /v1/server` gives, one per call (the last one again after that). */
function membersApi(server: (ServerInfo | Error)[] = [SERVER]) {
  const pictures: { url: string; minPosition: number }[] = [];
  const fake = fakeApi(ME, (calls) => ({
    rooms: async (minPosition?: number) => {
      calls.push(minPosition ? `rooms after ${minPosition}` : 'rooms');
      return { data: { rooms: ROOMS }, status: 200, epoch: 1 };
    },
    room: async (roomId: string) => {
      calls.push(`room ${roomId}`);
      return { data: ROOMS.find((r) => r.room_id === roomId)!, status: 200, epoch: 1 };
    },
    members: async (roomId: string) => {
      calls.push(`members ${roomId}`);
      return MEMBERS;
    },
    messages: async (roomId: string) => {
      calls.push(`messages ${roomId}`);
      return { data: { messages: PAGES[roomId] ?? [] }, status: 200, epoch: 1 };
    },
    markRead: async (_roomId: string, seq: number) => ({ seq, version: 0, position: null }),
    server: async () => {
      calls.push('server');
      const next = server.length > 1 ? server.shift()! : server[0]!;
      if (next instanceof Error) throw next;
      return next;
    },
    avatar: async (url: string, minPosition = 0) => {
      pictures.push({ url, minPosition });
      return new Blob(['picture']);
    },
  }));
  return { ...fake, pictures };
}


let chats: Chat[] = [];

beforeEach(() => {
  vi.stubGlobal('WebSocket', FakeWs);
  location.hash = '';
  chats = [];
});

afterEach(() => {
  for (const c of chats) c.stop();
  vi.unstubAllGlobals();
});

/** Signed in, the socket open and subscribed to every room, rooms `open` opened (their pages and members read). */
async function world(...open: string[]) {
  return worldWith(membersApi(), ...open);
}

async function worldWith(fake: ReturnType<typeof membersApi>, ...open: string[]) {
  const { chat, ws } = await startedChat(fake, ROOMS);
  chats.push(chat);
  for (const id of open) {
    chat.setActive(id);
    await settle();
  }
  return { chat, ws, calls: fake.calls, pictures: fake.pictures };
}

const rename = { type: 'member_updated', room_id: 'g', user_id: BOB, position: 900, display_name: 'Robert' };
const erasure = { type: 'member_updated', room_id: 'g', user_id: BOB, position: 901, display_name: '[erased]', username: 'erased-0123456789abcdef012345678', erased: true };

const newAvatar = { type: 'member_updated', room_id: 'g', user_id: BOB, position: 902, avatar_url: `/v1/users/${BOB}/avatar?v=a1` };

const bodies = (chat: Chat, roomId: string) => chat.state.timelines[roomId]!.tl.messages.map((m) => m.body);

describe('Chat: member_updated frames', () => {
  it('a rename shows the new name at once: authors, member lists, a direct room, the list\'s last sender', async () => {
    const { chat, ws } = await world('h', 'g');
    expect(chat.userName(BOB)).toBe('Bob');
    const timelines = chat.state.timelines;
    ws.frame(rename);
    expect(chat.userName(BOB)).toBe('Robert');
    expect(chat.state.users[BOB]).toEqual({ username: 'bob', display_name: 'Robert' });
    for (const id of ['g', 'h']) expect(chat.state.members[id]!.find((m) => m.user_id === BOB)).toMatchObject({ username: 'bob', display_name: 'Robert' });
    expect(chat.state.rooms.byId.dm!.other_user).toEqual({ user_id: BOB, username: 'bob', display_name: 'Robert' });
    expect(chat.state.rooms.byId.g!.last_message).toMatchObject({ sender_display_name: 'Robert', body: 'see the plans' });
    // messages are untouched by a rename
    expect(chat.state.timelines).toBe(timelines);
    // carol is still carol
    expect(chat.userName(CAROL)).toBe('Carol');
  });

  it('a new avatar shows at once wherever he is shown, and leaves his name alone; an erasure removes it', async () => {
    const { chat, ws, pictures } = await world('h', 'g');
    const timelines = chat.state.timelines;
    ws.frame(newAvatar);
    expect(chat.state.users[BOB]).toEqual({ username: 'bob', display_name: 'Bob', avatar_url: newAvatar.avatar_url });
    for (const id of ['g', 'h']) {
      expect(chat.state.members[id]!.find((m) => m.user_id === BOB)).toMatchObject({ display_name: 'Bob', avatar_url: newAvatar.avatar_url });
    }
    expect(chat.state.rooms.byId.dm!.other_user).toEqual({ user_id: BOB, username: 'bob', display_name: 'Bob', avatar_url: newAvatar.avatar_url });
    expect(chat.state.rooms.byId.g!.last_message).toMatchObject({ sender_display_name: 'Bob' });
    expect(chat.state.timelines).toBe(timelines);
    expect(chat.state.users[CAROL]!.avatar_url).toBeUndefined();
    // The frame can come before the read models have the picture: its bytes are read after the frame.
    await chat.avatar(newAvatar.avatar_url);
    expect(pictures).toEqual([{ url: newAvatar.avatar_url, minPosition: 902 }]);
    // removed
    ws.frame({ ...newAvatar, position: 903, avatar_url: null });
    expect(chat.state.users[BOB]!.avatar_url).toBeNull();
    expect(chat.state.rooms.byId.dm!.other_user!.avatar_url).toBeNull();
    // again, then erased: no picture any more
    ws.frame({ ...newAvatar, position: 904 });
    ws.frame({ ...erasure, avatar_url: null });
    expect(chat.state.users[BOB]).toMatchObject({ display_name: '[erased]', avatar_url: null });
    expect(chat.state.members.g!.find((m) => m.user_id === BOB)!.avatar_url).toBeNull();
  });

  it('an erasure turns his messages in that room into "[erased]" (ids, seq, versions, reactions kept); others\' are untouched', async () => {
    const { chat, ws } = await world('h', 'g');
    const before = chat.state.timelines.g!.tl.messages;
    const otherRoom = chat.state.timelines.h;
    ws.frame(erasure);

    expect(bodies(chat, 'g')).toEqual(['[erased]', 'hi bob', '[erased]', 'nice']);
    const after = chat.state.timelines.g!.tl.messages;
    expect(after.map((m) => [m.message_id, m.seq, m.version])).toEqual(before.map((m) => [m.message_id, m.seq, m.version]));
    expect(after[0]!.reactions).toEqual({ '👍': [ME] });
    expect(after[2]!.attachments).toEqual([{ ...file, name: '[erased]' }]);
    expect(after[1]).toBe(before[1]);
    expect(after[3]).toBe(before[3]);
    // another room waits for its own frame
    expect(chat.state.timelines.h).toBe(otherRoom);
    expect(bodies(chat, 'h')).toEqual(['in the other room']);

    // his name, wherever it shows
    expect(chat.userName(BOB)).toBe('[erased]');
    expect(chat.state.users[BOB]!.username).toBe(erasure.username);
    expect(chat.state.members.g!.find((m) => m.user_id === BOB)).toMatchObject({ username: erasure.username, display_name: '[erased]' });
    expect(chat.state.rooms.byId.dm!.other_user!.display_name).toBe('[erased]');
    expect(chat.state.rooms.byId.g!.last_message).toMatchObject({ body: '[erased]', sender_display_name: '[erased]' });

    // the frame for the other room
    ws.frame({ ...erasure, room_id: 'h' });
    expect(bodies(chat, 'h')).toEqual(['[erased]']);
  });

  it('a live message of his arriving after the erasure (sent before it) reads "[erased]" too', async () => {
    const { chat, ws } = await world('g');
    ws.frame(erasure);
    ws.frame({ type: 'message_sent', room_id: 'g', version: 6, position: 60, data: { seq: 5, message_id: 'm5', sender_id: BOB, body: 'too late', reply_to: null } });
    expect(bodies(chat, 'g')).toEqual(['[erased]', 'hi bob', '[erased]', 'nice', '[erased]']);
  });

  it("the frame moves no room version: no gap, no reload, and a reconnect resumes where the room's events left off", async () => {
    const { chat, ws, calls } = await world('g');
    const before = calls.length;
    const entry = chat.state.rooms.byId.g!;
    ws.frame(rename);
    ws.frame(erasure);
    ws.frame({ ...erasure, room_id: 'h', position: 902 });
    ws.frame({ ...erasure, room_id: 'not-mine', position: 903 });
    await settle();
    expect([chat.state.rooms.byId.g!.version, chat.state.rooms.byId.g!.position]).toEqual([entry.version, entry.position]);

    // The next room event (version 6 after 5) applies as the next one: no gap.
    ws.frame({ type: 'message_sent', room_id: 'g', version: 6, position: 960, data: { seq: 5, message_id: 'm5', sender_id: CAROL, body: 'still here', reply_to: null } });
    expect(chat.state.rooms.byId.g!.version).toBe(6);
    expect(bodies(chat, 'g').at(-1)).toBe('still here');
    await settle();
    expect(calls.slice(before).filter((c) => c.startsWith('room ') || c.startsWith('messages') || c.startsWith('rooms after'))).toEqual([]);

    // A reconnect subscribes after the room events applied, whatever member_updated frames came.
    ws.drop();
    await vi.waitFor(() => expect(FakeWs.last).not.toBe(ws));
    const next = FakeWs.last!;
    next.open();
    expect(next.sent).toEqual(
      expect.arrayContaining([
        { type: 'subscribe', room_id: 'g', after_version: 6, epoch: 1 },
        { type: 'subscribe', room_id: 'h', after_version: 7, epoch: 1 },
      ]),
    );
  });

  it('a members list read before a rename (answered after it) does not bring the old name back', async () => {
    const { chat, ws } = await world('g');
    let answer: (m: Member[]) => void = () => undefined;
    (chat.api as unknown as { members: () => Promise<Member[]> }).members = () => new Promise((r) => (answer = r));
    const load = chat.loadMembers('g');
    ws.frame(rename);
    answer(MEMBERS); // read before the rename reached the read models
    await load;
    expect(chat.userName(BOB)).toBe('Robert');
    expect(chat.state.members.g!.find((m) => m.user_id === BOB)!.display_name).toBe('Robert');
  });

  it('a malformed frame is ignored', async () => {
    const { chat, ws } = await world('g');
    const s = chat.state;
    ws.frame({ type: 'member_updated', room_id: 'g', user_id: BOB });
    ws.frame({ type: 'member_updated', room_id: 'g', display_name: 'x' });
    await settle();
    expect(chat.state.users).toBe(s.users);
    expect(chat.state.timelines).toBe(s.timelines);
  });
});

describe('Chat: retention frames', () => {
  it('a new period and expired messages show at once, and the room events after them are no gap (no reload)', async () => {
    const { chat, ws, calls } = await world('g');
    const before = calls.length;
    ws.frame({ type: 'room_retention_changed', room_id: 'g', version: 6, position: 960, data: { days: 30, changed_by: BOB } });
    expect(chat.state.rooms.byId.g).toMatchObject({ version: 6, retention_days: 30 });
    ws.frame({ type: 'messages_expired', room_id: 'g', version: 7, position: 970, data: { up_to_seq: 2 } });
    expect(bodies(chat, 'g')).toEqual(['see the plans', 'nice']);
    expect(chat.state.rooms.byId.g).toMatchObject({ version: 7, expired_up_to: 2 });
    ws.frame({ type: 'room_retention_changed', room_id: 'g', version: 8, position: 980, data: { days: null, changed_by: ME } });
    expect(chat.state.rooms.byId.g!.retention_days).toBeNull();

    ws.frame({ type: 'message_sent', room_id: 'g', version: 9, position: 990, data: { seq: 5, message_id: 'm5', sender_id: CAROL, body: 'still here', reply_to: null } });
    expect(chat.state.rooms.byId.g!.version).toBe(9);
    expect(bodies(chat, 'g')).toEqual(['see the plans', 'nice', 'still here']);
    await settle();
    expect(calls.slice(before).filter((c) => c.startsWith('room ') || c.startsWith('messages') || c.startsWith('rooms after'))).toEqual([]);
  });
});

describe('Chat: what the server keeps and accepts', () => {
  it('reads the default retention period and the limits once when it starts', async () => {
    const { chat, calls } = await world();
    expect(chat.state.server).toEqual(SERVER);
    expect(calls.filter((c) => c === 'server')).toEqual(['server']);
  });

  it('a server without the route leaves it unknown, and asks once', async () => {
    const { chat, calls } = await worldWith(membersApi([new ApiError(404, 'not_found', 'no such route')]));
    expect(chat.state.server).toBeNull();
    expect(calls.filter((c) => c === 'server')).toEqual(['server']);
  });

  it('an unavailable server is asked again', async () => {
    const { chat, calls } = await worldWith(membersApi([new ApiError(503, 'unavailable', 'busy'), SERVER]));
    expect(chat.state.server).toBeNull();
    // The first retry waits half a second.
    await new Promise((r) => setTimeout(r, 700));
    expect(chat.state.server).toEqual(SERVER);
    expect(calls.filter((c) => c === 'server')).toEqual(['server', 'server']);
  });
});
