import { describe, expect, it } from 'vitest';
import type { Member, MemberUpdatedFrame, Mention, Message, SearchHit } from '../types';
import { isMemberUpdatedFrame } from '../types';
import { eraseInEphemeral, eraseInHits, eraseInQuotes, namesAfter, renameInMentions, renameMember, renameMembers, renameUser } from './members';

const rename = (over: Partial<MemberUpdatedFrame> = {}): MemberUpdatedFrame => ({
  type: 'member_updated',
  room_id: 'g',
  user_id: 'bob',
  position: 500,
  display_name: 'Robert',
  ...over,
});
const erase = (over: Partial<MemberUpdatedFrame> = {}) => rename({ display_name: '[erased]', username: 'erased-00ff', erased: true, ...over });

const member = (user_id: string, username: string, display_name: string | null): Member => ({ user_id, username, display_name, role: 'member', joined_at: null });

function mention(room_id: string, sender_id: string, body: string): Mention {
  return {
    room_id,
    room_kind: 'group',
    room_name: room_id,
    message_id: `${room_id}-${body}`,
    seq: 1,
    sender_id,
    sender_username: sender_id,
    sender_display_name: sender_id.toUpperCase(),
    body,
    sent_at: '2026-01-01T00:00:00Z',
    position: 1,
    room_mention: false,
  };
}

describe('names', () => {
  it('the name shown is the display name, or the username when it is empty', () => {
    expect(namesAfter(rename(), { username: 'bob' })).toEqual({ username: 'bob', display_name: 'Robert' });
    expect(namesAfter(rename({ display_name: '' }), { username: 'bob' })).toEqual({ username: 'bob', display_name: 'bob' });
    expect(namesAfter(erase(), { username: 'bob' })).toEqual({ username: 'erased-00ff', display_name: '[erased]' });
    expect(namesAfter(rename(), undefined)).toBeNull();
  });

  it("a rename changes the user's names and nobody else's", () => {
    const users = { bob: { username: 'bob', display_name: 'Bob' }, carol: { username: 'carol', display_name: 'Carol' } };
    const next = renameUser(users, rename());
    expect(next).toEqual({ ...users, bob: { username: 'bob', display_name: 'Robert' } });
    expect(next.carol).toBe(users.carol);
    expect(renameUser(next, rename())).toBe(next);
    // unknown, but in the room's member list: added
    expect(renameUser({}, rename(), [member('bob', 'bob', 'Bob')])).toEqual({ bob: { username: 'bob', display_name: 'Robert' } });
    // unknown and no username anywhere: nothing to show it by
    expect(renameUser({}, rename())).toEqual({});
  });

  it("member lists: every room's, the user's entry only", () => {
    const g = [member('bob', 'bob', 'Bob'), member('carol', 'carol', null)];
    const h = [member('carol', 'carol', null)];
    const next = renameMembers({ g, h }, erase());
    expect(next.g).toEqual([member('bob', 'erased-00ff', '[erased]'), g[1]]);
    expect(next.h).toBe(h);
    expect(renameMember(next.g!, erase())).toBe(next.g);
  });

  it("mentions panel: the sender's names everywhere, the erased words only in the frame's room", () => {
    const items = [mention('g', 'bob', 'hi @me'), mention('h', 'bob', 'there @me'), mention('g', 'carol', 'me too @me')];
    const renamed = renameInMentions(items, rename());
    expect(renamed.map((m) => [m.sender_display_name, m.body])).toEqual([
      ['Robert', 'hi @me'],
      ['Robert', 'there @me'],
      ['CAROL', 'me too @me'],
    ]);
    const erased = renameInMentions(items, erase());
    expect(erased.map((m) => [m.sender_username, m.sender_display_name, m.body])).toEqual([
      ['erased-00ff', '[erased]', '[erased]'],
      ['erased-00ff', '[erased]', 'there @me'],
      ['carol', 'CAROL', 'me too @me'],
    ]);
    expect(erased[2]).toBe(items[2]);
  });
});

describe('erased texts', () => {
  it('search hits, vanishing messages and quotes of the erased read "[erased]"; a rename leaves them', () => {
    const hit = (room_id: string, sender_id: string): SearchHit => ({
      message_id: `${room_id}-${sender_id}`,
      room_id,
      seq: 1,
      sender_id,
      sent_at: '2026-01-01T00:00:00Z',
      body: 'the salmon swims',
      snippet: [{ text: 'salmon', highlight: true }],
      score: 1,
    });
    const hits = [hit('g', 'bob'), hit('h', 'bob'), hit('g', 'carol')];
    expect(eraseInHits(hits, rename())).toBe(hits);
    const erasedHits = eraseInHits(hits, erase());
    expect(erasedHits[0]).toMatchObject({ body: '[erased]', snippet: [{ text: '[erased]', highlight: false }], message_id: 'g-bob' });
    expect(erasedHits.slice(1)).toEqual(hits.slice(1));

    const eph = [
      { id: 1, user_id: 'bob', body: 'psst' },
      { id: 2, user_id: 'carol', body: 'hm' },
    ];
    expect(eraseInEphemeral(eph, erase())).toEqual([{ id: 1, user_id: 'bob', body: '[erased]' }, eph[1]]);
    expect(eraseInEphemeral(eph, rename())).toBe(eph);

    const quoted: Message = {
      seq: 1,
      message_id: 'q1',
      sender_id: 'bob',
      body: 'quote me',
      deleted: false,
      reply_to: null,
      edited_at: null,
      edit_number: 0,
      reactions: { '🎉': ['carol'] },
      sent_at: '2026-01-01T00:00:00Z',
      version: 4,
    };
    const quotes = { q1: quoted, q2: 'missing' as const, q3: { ...quoted, message_id: 'q3', sender_id: 'carol' } };
    const next = eraseInQuotes(quotes, erase());
    expect(next.q1).toEqual({ ...quoted, body: '[erased]' });
    expect(next.q2).toBe('missing');
    expect(next.q3).toBe(quotes.q3);
    expect(eraseInQuotes(next, erase())).toBe(next);
  });
});

describe('avatars', () => {
  const picture = (url: string | null): MemberUpdatedFrame => ({ type: 'member_updated', room_id: 'g', user_id: 'bob', position: 600, avatar_url: url });

  it('a frame may carry a name, an avatar or both, and must carry one', () => {
    expect(isMemberUpdatedFrame({ ...picture('/v1/users/bob/avatar?v=1') })).toBe(true);
    expect(isMemberUpdatedFrame({ ...picture(null) })).toBe(true);
    expect(isMemberUpdatedFrame({ ...rename() })).toBe(true);
    expect(isMemberUpdatedFrame({ type: 'member_updated', room_id: 'g', user_id: 'bob', position: 1 })).toBe(false);
    expect(isMemberUpdatedFrame({ ...picture(null), avatar_url: 7 })).toBe(false);
  });

  it("an avatar's frame changes the picture and keeps the names", () => {
    const known = { username: 'bob', display_name: 'Bob' };
    expect(namesAfter(picture('/a?v=1'), known)).toEqual({ ...known, avatar_url: '/a?v=1' });
    expect(namesAfter(picture(null), { ...known, avatar_url: '/a?v=1' })).toEqual({ ...known, avatar_url: null });
    // a rename keeps the picture
    expect(namesAfter(rename(), { ...known, avatar_url: '/a?v=1' })).toEqual({ username: 'bob', display_name: 'Robert', avatar_url: '/a?v=1' });
    // an erasure carries no picture
    expect(namesAfter(erase({ avatar_url: null }), { ...known, avatar_url: '/a?v=1' })).toMatchObject({ display_name: '[erased]', avatar_url: null });

    const users = { bob: known, carol: { username: 'carol', display_name: 'Carol' } };
    const next = renameUser(users, picture('/a?v=1'));
    expect(next.bob).toEqual({ ...known, avatar_url: '/a?v=1' });
    expect(next.carol).toBe(users.carol);
    expect(renameUser(next, picture('/a?v=1'))).toBe(next);

    const list = [member('bob', 'bob', 'Bob'), member('carol', 'carol', null)];
    const members = renameMember(list, picture('/a?v=1'));
    expect(members[0]).toEqual({ ...list[0], avatar_url: '/a?v=1' });
    expect(members[1]).toBe(list[1]);
    expect(renameMember(members, picture('/a?v=1'))).toBe(members);
  });

  it("an avatar's frame leaves the mentions' names alone", () => {
    const items = [mention('g', 'bob', 'hi')];
    expect(renameInMentions(items, picture('/a?v=1'))).toBe(items);
  });
});
