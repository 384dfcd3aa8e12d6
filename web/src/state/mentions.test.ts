import { describe, expect, it } from 'vitest';
import { defaultLevel, eventMentions, findMentions, mentionsMe, notificationReason, splitMentions } from './mentions';

// What a body mentions is pinned by the shared vectors (mentions.vectors.test.ts).
describe('reading mentions in a body', () => {
  it('finds the tokens’ places, in UTF-16 units, after astral characters too', () => {
    const text = '😀 @bob and @room';
    const tokens = findMentions(text);
    expect(tokens.map((t) => text.slice(t.start, t.end))).toEqual(['@bob', '@room']);
    expect(tokens.map((t) => t.name)).toEqual(['bob', 'room']);
  });

  it('splits text into plain pieces and mentions', () => {
    expect(splitMentions('thanks @bob. see you')).toEqual([{ text: 'thanks ' }, { text: '@bob', mention: 'bob' }, { text: '. see you' }]);
    expect(splitMentions('no one here')).toEqual([{ text: 'no one here' }]);
    expect(splitMentions('@al is too short')).toEqual([{ text: '@al is too short' }]);
  });
});

describe('whether a message mentions the reader', () => {
  const alice = { id: 'ua', username: 'alice' };

  it('by the server’s resolution when the message carries it', () => {
    expect(mentionsMe({ sender_id: 'ub', body: 'hi', mentions: ['ua'] }, alice)).toBe(true);
    // the body names alice, but the server did not (she was not a member then)
    expect(mentionsMe({ sender_id: 'ub', body: 'hi @alice', mentions: [], mentions_room: false }, alice)).toBe(false);
    expect(mentionsMe({ sender_id: 'ub', body: 'hi @room', mentions: [], mentions_room: true }, alice)).toBe(true);
  });

  it('by the body for history messages; @room only from who may use it', () => {
    expect(mentionsMe({ sender_id: 'ub', body: 'hi @alice' }, alice)).toBe(true);
    expect(mentionsMe({ sender_id: 'ub', body: 'hi @alicex' }, alice)).toBe(false);
    expect(mentionsMe({ sender_id: 'ub', body: 'hi @alice' }, { id: 'ua', username: null })).toBe(false);
    const mods = new Set(['owner']);
    const counts = (s: string) => mods.has(s);
    expect(mentionsMe({ sender_id: 'owner', body: '@room meeting' }, alice, counts)).toBe(true);
    expect(mentionsMe({ sender_id: 'ub', body: '@room meeting' }, alice, counts)).toBe(false);
  });

  it('never one’s own message, never a deleted one', () => {
    expect(mentionsMe({ sender_id: 'ua', body: '@alice @room', mentions_room: true }, alice)).toBe(false);
    expect(mentionsMe({ sender_id: 'ub', body: null, deleted: true, mentions: ['ua'] }, alice)).toBe(false);
  });

  it('a live event’s data: named, or @room from someone else', () => {
    expect(eventMentions({ sender_id: 'ub', mentions: ['ux', 'ua'] }, 'ua')).toBe(true);
    expect(eventMentions({ sender_id: 'ub', mentions_room: true }, 'ua')).toBe(true);
    expect(eventMentions({ sender_id: 'ua', mentions_room: true }, 'ua')).toBe(false);
    expect(eventMentions({ sender_id: 'ub', body: '@alice' }, 'ua')).toBe(false);
  });
});

describe('notification levels', () => {
  const base = { me: 'ua', senderId: 'ub' };

  it('defaults: every message of a direct room, mentions in a group room', () => {
    expect(defaultLevel('direct')).toBe('all');
    expect(defaultLevel('group')).toBe('mentions');
  });

  it('mirrors the server’s reasons', () => {
    expect(notificationReason({ ...base, level: 'mentions', direct: false })).toBeNull();
    expect(notificationReason({ ...base, level: 'mentions', direct: false, mentions: ['ua'] })).toBe('mention');
    expect(notificationReason({ ...base, level: 'mentions', direct: false, mentionsRoom: true })).toBe('room_mention');
    expect(notificationReason({ ...base, level: 'mentions', direct: true })).toBe('direct');
    expect(notificationReason({ ...base, level: 'all', direct: false })).toBe('message');
    expect(notificationReason({ ...base, level: 'all', direct: false, mentions: ['ua'] })).toBe('mention');
    expect(notificationReason({ ...base, level: 'none', direct: true, mentions: ['ua'] })).toBeNull();
    expect(notificationReason({ ...base, senderId: 'ua', level: 'all', direct: true })).toBeNull();
  });
});
