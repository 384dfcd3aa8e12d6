// A member's new name or avatar, or their erasure, told live (`member_updated` frames, ADR
// 23): the changes to the names, pictures and texts the client keeps outside the room list
// (`rooms.ts`, `applyMemberUpdate`) and the timelines (`timeline.ts`, `eraseSender`). A frame
// carries what changed: a name, an avatar, or both (an erasure). Names and pictures belong to
// the user: they change wherever the user appears. Texts (an erased member's messages) change in
// the frame's room: a frame comes for every room the user is in. Pure functions; each
// returns what it was given when nothing changed.

import { ERASED_TEXT, type Member, type MemberUpdatedFrame, type Mention, type Message, type SearchHit } from '../types';
import { erasedMessage } from './timeline';

/** A user's names (and picture) as the client shows them (`users` of the app state). */
export interface Names {
  username: string;
  display_name: string;
  /** Their avatar's URL; null: none; absent: not known. */
  avatar_url?: string | null;
}

/** What is known of a user before a frame. */
export interface Known {
  username?: string | null;
  display_name?: string | null;
  avatar_url?: string | null;
}

/**
 * The names after the frame, from what was known of them (`''`: the username shows). What the
 * frame does not carry stays as known (an avatar's frame keeps the name).
 */
export function namesAfter(f: MemberUpdatedFrame, known: Known | undefined): Names | null {
  const username = f.username || known?.username || '';
  if (!username) return null;
  const display_name = f.display_name !== undefined ? f.display_name || username : known?.display_name || username;
  const out: Names = { username, display_name };
  const avatar = f.avatar_url !== undefined ? f.avatar_url : known?.avatar_url;
  if (avatar !== undefined) out.avatar_url = avatar;
  return out;
}

/** Whether `next` shows `cur` as it is. */
function same(cur: Known, next: Names): boolean {
  return cur.username === next.username && cur.display_name === next.display_name && (cur.avatar_url ?? null) === (next.avatar_url ?? null);
}

/**
 * The names by user id after the frame. A user not known yet is added only when the frame or
 * `members` (the room's member list, when loaded) gives their username.
 */
export function renameUser(users: Record<string, Names>, f: MemberUpdatedFrame, members?: readonly Member[]): Record<string, Names> {
  const cur = users[f.user_id];
  const next = namesAfter(f, cur ?? members?.find((m) => m.user_id === f.user_id));
  if (!next || (cur && same(cur, next))) return users;
  return { ...users, [f.user_id]: cur ? { ...cur, ...next } : next };
}

/** A room's member list after the frame. */
export function renameMember(list: Member[], f: MemberUpdatedFrame): Member[] {
  const i = list.findIndex((m) => m.user_id === f.user_id);
  if (i < 0) return list;
  const m = list[i]!;
  const next = namesAfter(f, m);
  if (!next || same(m, next)) return list;
  const copy = list.slice();
  copy[i] = { ...m, ...next };
  return copy;
}

/** The member lists of every room after the frame (one's names are the same in all). */
export function renameMembers(members: Record<string, Member[]>, f: MemberUpdatedFrame): Record<string, Member[]> {
  let out: Record<string, Member[]> | null = null;
  for (const [roomId, list] of Object.entries(members)) {
    const next = renameMember(list, f);
    if (next === list) continue;
    out ??= { ...members };
    out[roomId] = next;
  }
  return out ?? members;
}

/** The mentions panel after the frame: the sender's names; erased, their words in the frame's room. */
export function renameInMentions(items: Mention[], f: MemberUpdatedFrame): Mention[] {
  let out: Mention[] | null = null;
  for (let i = 0; i < items.length; i++) {
    const m = items[i]!;
    if (m.sender_id !== f.user_id) continue;
    let next = m;
    const names = namesAfter(f, { username: m.sender_username, display_name: m.sender_display_name });
    if (names && (m.sender_username !== names.username || m.sender_display_name !== names.display_name)) {
      next = { ...next, sender_username: names.username, sender_display_name: names.display_name };
    }
    if (f.erased && m.room_id === f.room_id && m.body !== ERASED_TEXT) next = { ...next, body: ERASED_TEXT };
    if (next === m) continue;
    out ??= items.slice();
    out[i] = next;
  }
  return out ?? items;
}

/** Search results after an erasure: the erased member's hits in the frame's room read "[erased]". */
export function eraseInHits(hits: SearchHit[], f: MemberUpdatedFrame): SearchHit[] {
  if (!f.erased) return hits;
  let out: SearchHit[] | null = null;
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i]!;
    if (h.sender_id !== f.user_id || h.room_id !== f.room_id || h.body === ERASED_TEXT) continue;
    out ??= hits.slice();
    out[i] = { ...h, body: ERASED_TEXT, snippet: [{ text: ERASED_TEXT, highlight: false }] };
  }
  return out ?? hits;
}

/** Vanishing messages of the frame's room after an erasure: the erased member's read "[erased]". */
export function eraseInEphemeral<E extends { user_id: string; body: string }>(items: E[], f: MemberUpdatedFrame): E[] {
  if (!f.erased) return items;
  let out: E[] | null = null;
  for (let i = 0; i < items.length; i++) {
    const e = items[i]!;
    if (e.user_id !== f.user_id || e.body === ERASED_TEXT) continue;
    out ??= items.slice();
    out[i] = { ...e, body: ERASED_TEXT };
  }
  return out ?? items;
}

/**
 * Quoted originals of replies (by message id, fetched apart) after an erasure: the erased
 * member's read "[erased]". A quote does not say its room; an erasure is the whole account's.
 */
export function eraseInQuotes(quotes: Record<string, Message | 'missing'>, f: MemberUpdatedFrame): Record<string, Message | 'missing'> {
  if (!f.erased) return quotes;
  let out: Record<string, Message | 'missing'> | null = null;
  for (const [id, q] of Object.entries(quotes)) {
    if (q === 'missing' || q.sender_id !== f.user_id) continue;
    const next = erasedMessage(q);
    if (next === q) continue;
    out ??= { ...quotes };
    out[id] = next;
  }
  return out ?? quotes;
}
