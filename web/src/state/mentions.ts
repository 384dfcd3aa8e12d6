// Mentions: `@username` names a member, `@room` everyone (when an owner or admin writes it).
// The server resolves them when a message is sent, and the live feed carries the result
// (`mentions`: user ids, `mentions_room`). The client reads a body only to emphasise the
// names it shows and, for history pages (which carry no resolution), to tell whether a
// message mentions the reader. The reading rules are the server's (events/src/mention.rs).
// Pure functions.

import type { NotificationLevel, NotificationReason } from '../types';

/** The word that mentions everyone in a room. */
export const ROOM_MENTION = 'room';

/** Most distinct users one message may mention (the server ignores the rest). */
export const MAX_MENTIONS_PER_MESSAGE = 50;

/** One `@name` in a text: `[start, end)` in UTF-16 units, covering the `@` and the name. */
export interface MentionToken {
  start: number;
  end: number;
  /** The username, or `room`. */
  name: string;
}

const NAME_CHAR = /^[a-z0-9_.-]$/;
const WORD_CHAR = /^[\p{Alphabetic}\p{N}]$/u;
const USERNAME = /^[a-z0-9_.-]{3,32}$/;

/**
 * Every mention of `text`, in order (a name written twice is listed twice). A mention is `@`
 * at the start or after a character that cannot be part of an address or a name (so
 * `alice@example.com` mentions nobody), then a valid username (3–32 of `a-z0-9_.-`, lowercase:
 * `@Bob` is text) that no other letter or digit continues; a trailing `.` or `-` ends the
 * sentence, not the name (`thanks @bob.`).
 */
export function findMentions(text: string): MentionToken[] {
  if (!text.includes('@')) return [];
  const chars = Array.from(text);
  // UTF-16 offset of each code point (and of the end).
  const at: number[] = new Array<number>(chars.length + 1);
  let offset = 0;
  for (let k = 0; k < chars.length; k++) {
    at[k] = offset;
    offset += chars[k]!.length;
  }
  at[chars.length] = offset;
  const out: MentionToken[] = [];
  let i = 0;
  while (i < chars.length) {
    const prev = i > 0 ? chars[i - 1]! : '';
    const starts = chars[i] === '@' && (i === 0 || !(WORD_CHAR.test(prev) || '_.-@'.includes(prev)));
    if (!starts) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < chars.length && NAME_CHAR.test(chars[end]!)) end++;
    const next = end < chars.length ? chars[end]! : '';
    const cutShort = next !== '' && (WORD_CHAR.test(next) || next === '@');
    let name = chars.slice(i + 1, end).join('');
    while (name.endsWith('.') || name.endsWith('-')) name = name.slice(0, -1);
    const start = i;
    i = Math.max(end, i + 1);
    if (cutShort || name === '') continue;
    if (name !== ROOM_MENTION && !USERNAME.test(name)) continue;
    out.push({ start: at[start]!, end: at[start]! + 1 + name.length, name });
  }
  return out;
}

export interface BodyMentions {
  /** The usernames named, each once, in the order first written (at most 50). */
  usernames: string[];
  /** It says `@room`. */
  room: boolean;
}

/** What a body mentions, as the server reads it before looking anyone up. */
export function parseMentions(body: string): BodyMentions {
  const usernames: string[] = [];
  let room = false;
  for (const t of findMentions(body)) {
    if (t.name === ROOM_MENTION) room = true;
    else if (usernames.length < MAX_MENTIONS_PER_MESSAGE && !usernames.includes(t.name)) usernames.push(t.name);
  }
  return { usernames, room };
}

/** A piece of text: plain, or one `@name` (`mention`: the name, without the `@`). */
export interface MentionPiece {
  text: string;
  mention?: string;
}

/** Splits text into plain pieces and mentions. */
export function splitMentions(text: string): MentionPiece[] {
  const tokens = findMentions(text);
  if (tokens.length === 0) return [{ text }];
  const out: MentionPiece[] = [];
  let last = 0;
  for (const t of tokens) {
    if (t.start > last) out.push({ text: text.slice(last, t.start) });
    out.push({ text: text.slice(t.start, t.end), mention: t.name });
    last = t.end;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** What tells whether a message mentions someone. */
export interface MentionFacts {
  sender_id: string;
  body: string | null;
  deleted?: boolean;
  /** The server's resolution (live messages); undefined when unknown (history pages). */
  mentions?: readonly string[];
  mentions_room?: boolean;
}

export interface Reader {
  id: string;
  /** null while unknown: a message's body then cannot name them. */
  username: string | null;
}

/**
 * Whether a message mentions `reader` (never their own, never a deleted one): by the
 * server's resolution when the message carries it, else by its body, where `@room` counts
 * when `roomMentionCounts(sender)` (its sender moderates a group room).
 */
export function mentionsMe(m: MentionFacts, reader: Reader, roomMentionCounts: (senderId: string) => boolean = () => true): boolean {
  if (m.deleted || m.body === null || m.sender_id === reader.id) return false;
  if (m.mentions !== undefined || m.mentions_room !== undefined) {
    return (m.mentions?.includes(reader.id) ?? false) || m.mentions_room === true;
  }
  const found = parseMentions(m.body);
  if (reader.username !== null && found.usernames.includes(reader.username)) return true;
  return found.room && roomMentionCounts(m.sender_id);
}

/** A live `message_sent` event's data: whether it mentions `me` (by name, or `@room` from someone else). */
export function eventMentions(data: Record<string, unknown>, me: string): boolean {
  if (data.sender_id === me) return false;
  const named = Array.isArray(data.mentions) && data.mentions.includes(me);
  return named || data.mentions_room === true;
}

/** The default notification level of a room of this kind. */
export function defaultLevel(kind: string): NotificationLevel {
  return kind === 'direct' ? 'all' : 'mentions';
}

/**
 * Whether (and why) `me`, at `level` in a room (`direct` or not), is told of a message: the
 * server's rule for `notification` frames, applied to the rooms the socket follows itself.
 */
export function notificationReason(args: {
  me: string;
  level: NotificationLevel;
  direct: boolean;
  senderId: string;
  mentions?: readonly string[];
  mentionsRoom?: boolean;
}): NotificationReason | null {
  if (args.senderId === args.me || args.level === 'none') return null;
  let why: NotificationReason | null = null;
  if (args.mentions?.includes(args.me)) why = 'mention';
  else if (args.mentionsRoom) why = 'room_mention';
  else if (args.direct) why = 'direct';
  if (args.level === 'mentions') return why;
  return why ?? 'message';
}

/** A notification reason that is a mention (the badge counts it). */
export function isMentionReason(r: NotificationReason): boolean {
  return r === 'mention' || r === 'room_mention';
}
