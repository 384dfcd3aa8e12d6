// The room list: the caller's joined rooms, newest activity first, with unread counts
// and last messages kept current from the live feed between polls of `GET /v1/rooms`.
// Pure functions over an immutable RoomsState.

import { ERASED_TEXT, type EventFrame, type MemberUpdatedFrame, type MyRoom, type NotificationFrame, type NotificationLevel } from '../types';
import { defaultLevel, eventMentions, isMentionReason } from './mentions';

export interface RoomEntry extends MyRoom {
  /** When something last happened in the room (ISO 8601): orders the list. */
  activity: string;
  /** Unread messages that mention the caller (0 from older servers). */
  unread_mentions: number;
  notifications: NotificationLevel;
  /**
   * Seqs counted as unread from `notification` frames (which carry no room version), so that
   * the same message arriving as an event later (a subscription catching up) is not counted
   * twice. Dropped with the entry when a poll replaces it: the poll counted them, or the
   * event will.
   */
  notified?: number[];
}

export interface RoomsState {
  /** By room id. */
  byId: Record<string, RoomEntry>;
  /** Room ids, newest activity first. */
  order: string[];
  /** Rooms added locally (joined, created) and when: a poll sent before may not list them. */
  addedAt: Record<string, number>;
  /** Rooms left locally and when: a poll sent before may still list them. */
  removedAt: Record<string, number>;
}

export function emptyRooms(): RoomsState {
  return { byId: {}, order: [], addedAt: {}, removedAt: {} };
}

export function activityOf(r: MyRoom): string {
  return r.last_message?.sent_at ?? r.created_at;
}

function sortOrder(byId: Record<string, RoomEntry>): string[] {
  return Object.keys(byId).sort((a, b) => {
    const x = byId[a]!;
    const y = byId[b]!;
    if (x.activity !== y.activity) return x.activity < y.activity ? 1 : -1;
    return x.room_id < y.room_id ? -1 : 1;
  });
}

function entryFrom(r: MyRoom, prev?: RoomEntry): RoomEntry {
  const activity = activityOf(r);
  return {
    ...r,
    activity: prev && prev.activity > activity ? prev.activity : activity,
    unread_mentions: r.unread_mentions ?? 0,
    notifications: r.notifications ?? defaultLevel(r.kind),
  };
}

export interface MergeResult {
  state: RoomsState;
  added: string[];
  removed: string[];
}

/**
 * Merges a `GET /v1/rooms` answer sent at `sentAt` (ms). Rooms it does not list are
 * gone (left, kicked) unless added locally after it was sent; a room's fields are taken
 * only from an answer at least as new (by room version) as what the feed applied.
 */
export function mergeRoomList(s: RoomsState, rooms: readonly MyRoom[], sentAt: number): MergeResult {
  const byId: Record<string, RoomEntry> = {};
  const added: string[] = [];
  const removed: string[] = [];
  const listed = new Set<string>();
  const removedAt = { ...s.removedAt };
  const addedAt = { ...s.addedAt };
  for (const r of rooms) {
    listed.add(r.room_id);
    const left = removedAt[r.room_id];
    if (left !== undefined) {
      if (left >= sentAt) continue; // left after this poll was sent: stale
      delete removedAt[r.room_id];
    }
    const cur = s.byId[r.room_id];
    if (!cur) added.push(r.room_id);
    byId[r.room_id] = cur && cur.version > r.version ? cur : entryFrom(r, cur);
  }
  for (const id of Object.keys(s.byId)) {
    if (listed.has(id)) {
      if (addedAt[id] !== undefined && addedAt[id]! < sentAt) delete addedAt[id];
      continue;
    }
    const at = addedAt[id];
    if (at !== undefined && at >= sentAt) byId[id] = s.byId[id]!;
    else {
      removed.push(id);
      delete addedAt[id];
    }
  }
  for (const id of Object.keys(removedAt)) if (removedAt[id]! < sentAt - 60_000) delete removedAt[id];
  return { state: { byId, order: sortOrder(byId), addedAt, removedAt }, added, removed };
}

/** A room the caller just joined, created or opened (read back over REST). */
export function addRoom(s: RoomsState, r: MyRoom, now: number): RoomsState {
  const cur = s.byId[r.room_id];
  const byId = { ...s.byId, [r.room_id]: cur && cur.version > r.version ? cur : entryFrom(r, cur) };
  const removedAt = { ...s.removedAt };
  delete removedAt[r.room_id];
  return { byId, order: sortOrder(byId), addedAt: { ...s.addedAt, [r.room_id]: now }, removedAt };
}

/** A room reloaded after a resync: the answer replaces what the feed had applied. */
export function replaceRoom(s: RoomsState, r: MyRoom): RoomsState {
  const cur = s.byId[r.room_id];
  if (!cur) return s;
  const byId = { ...s.byId, [r.room_id]: entryFrom(r, cur) };
  return { ...s, byId, order: sortOrder(byId) };
}

export function removeRoom(s: RoomsState, roomId: string, now: number): RoomsState {
  if (!s.byId[roomId]) return { ...s, removedAt: { ...s.removedAt, [roomId]: now } };
  const byId = { ...s.byId };
  delete byId[roomId];
  const addedAt = { ...s.addedAt };
  delete addedAt[roomId];
  return { byId, order: s.order.filter((id) => id !== roomId), addedAt, removedAt: { ...s.removedAt, [roomId]: now } };
}

export interface EventContext {
  me: string;
  /** The room on screen while the page is visible (its new messages are being read). */
  viewing: string | null;
  /** ISO time the frame was received (frames carry no timestamp). */
  now: string;
}

export interface RoomEventResult {
  state: RoomsState;
  /** The caller left or was removed from the room. */
  removedMe?: boolean;
  /** A member joined, left or changed role: member lists are stale. */
  membersChanged?: boolean;
  /** Counts changed that only the server can tell (messages expired): reload the entry. */
  stale?: boolean;
}

function put(s: RoomsState, e: RoomEntry, reorder: boolean): RoomsState {
  const byId = { ...s.byId, [e.room_id]: e };
  return { ...s, byId, order: reorder ? sortOrder(byId) : s.order };
}

/** Unread after the marker moved to `readSeq` (own and deleted messages are not counted). */
function unreadAfterRead(e: RoomEntry, readSeq: number): number {
  if (readSeq >= e.last_seq) return 0;
  return Math.min(e.unread_count, e.last_seq - readSeq);
}

/**
 * Unread mentions after the marker moved to `readSeq`: none once everything is read; after a
 * part, at most the unread messages left (which of them mention one is not known here: the
 * next poll tells).
 */
function mentionsAfterRead(e: RoomEntry, readSeq: number): number {
  if (readSeq >= e.last_seq) return 0;
  return Math.min(e.unread_mentions, unreadAfterRead(e, readSeq));
}

/** The entry with its marker moved to `seq` (unread counts follow). */
function readTo(e: RoomEntry, seq: number): RoomEntry {
  return { ...e, read_seq: seq, unread_count: unreadAfterRead(e, seq), unread_mentions: mentionsAfterRead(e, seq) };
}

/**
 * Applies a live-feed event to the list. Idempotent by room version: an event the
 * entry already reflects (from the feed or a newer poll) changes nothing.
 */
export function applyRoomEvent(s: RoomsState, ev: EventFrame, ctx: EventContext): RoomEventResult {
  const cur = s.byId[ev.room_id];
  if (!cur) return { state: s };
  if (ev.version <= cur.version) return { state: s };
  const d = ev.data;
  let e: RoomEntry = { ...cur, version: ev.version, position: Math.max(cur.position, ev.position) };
  let reorder = false;
  const result: RoomEventResult = { state: s };
  switch (ev.type) {
    case 'message_sent': {
      const seq = d.seq as number;
      const sender = d.sender_id as string;
      e.last_seq = Math.max(e.last_seq, seq);
      // (A notification frame may have shown a newer one already.)
      if (seq >= (e.last_message?.seq ?? 0)) {
        e.last_message = {
          seq,
          message_id: d.message_id as string,
          sender_id: sender,
          body: (d.body as string) ?? null,
          deleted: false,
          sent_at: ctx.now,
        };
      }
      if (ctx.now > e.activity) e.activity = ctx.now;
      reorder = true;
      if (sender === ctx.me) {
        // Writing is reading: the server moves nobody's marker, but what one wrote is
        // not unread for them.
      } else if (e.notified?.includes(seq)) {
        // Counted already, from a notification frame.
      } else if (ctx.viewing !== ev.room_id && seq > e.read_seq) {
        e.unread_count += 1;
        if (eventMentions(d, ctx.me)) e.unread_mentions += 1;
      }
      break;
    }
    case 'message_edited':
      if (e.last_message && e.last_message.seq === d.seq) e.last_message = { ...e.last_message, body: d.body as string };
      break;
    case 'message_deleted':
      if (e.last_message && e.last_message.seq === d.seq) e.last_message = { ...e.last_message, body: null, deleted: true };
      break;
    case 'read_marker_moved':
      if (d.user_id === ctx.me) {
        const seq = d.seq as number;
        if (seq > e.read_seq) e = readTo(e, seq);
      }
      break;
    case 'notification_level_changed':
      if (d.user_id === ctx.me && isLevel(d.level)) e.notifications = d.level;
      break;
    case 'messages_expired': {
      const upTo = d.up_to_seq as number;
      e.expired_up_to = Math.max(e.expired_up_to ?? 0, upTo);
      if (e.last_message && e.last_message.seq <= upTo) e.last_message = null;
      // Expired unread messages are unread no more; how many were is the server's to say.
      if (e.read_seq < upTo && e.unread_count > 0) result.stale = true;
      break;
    }
    case 'room_retention_changed':
      e.retention_days = (d.days as number | null) ?? null;
      break;
    case 'room_renamed':
      e.name = d.name as string;
      break;
    case 'room_topic_changed':
      e.topic = (d.topic as string) ?? '';
      break;
    case 'room_visibility_changed':
      e.visibility = d.visibility as string;
      break;
    case 'member_joined':
      e.member_count += 1;
      result.membersChanged = true;
      break;
    case 'member_left':
    case 'member_kicked':
      e.member_count = Math.max(0, e.member_count - 1);
      result.membersChanged = true;
      if (d.user_id === ctx.me) result.removedMe = true;
      break;
    case 'member_banned':
      // The banned need not have been a member: the count comes with the next room list.
      result.membersChanged = true;
      if (d.user_id === ctx.me) result.removedMe = true;
      break;
    case 'member_role_changed':
      if (d.user_id === ctx.me) e.role = d.role as string;
      result.membersChanged = true;
      break;
    default:
      break;
  }
  if (result.removedMe) {
    result.state = removeRoom(s, ev.room_id, Date.now());
    return result;
  }
  e = { ...e };
  result.state = put(s, e, reorder);
  return result;
}

/** The caller's read marker moved to `seq` (the answer to `POST .../read`). */
export function markRead(s: RoomsState, roomId: string, seq: number): RoomsState {
  const cur = s.byId[roomId];
  if (!cur || seq <= cur.read_seq) {
    if (cur && (cur.unread_count > 0 || cur.unread_mentions > 0) && seq >= cur.last_seq) {
      return put(s, { ...cur, unread_count: 0, unread_mentions: 0 }, false);
    }
    return s;
  }
  return put(s, readTo(cur, seq), false);
}

export function totalUnread(s: RoomsState): number {
  let n = 0;
  for (const id of s.order) n += s.byId[id]!.unread_count;
  return n;
}

export function totalMentions(s: RoomsState): number {
  let n = 0;
  for (const id of s.order) n += s.byId[id]!.unread_mentions;
  return n;
}

export function isLevel(v: unknown): v is NotificationLevel {
  return v === 'all' || v === 'mentions' || v === 'none';
}

/** The caller chose another notification level in a room. */
export function setLevel(s: RoomsState, roomId: string, level: NotificationLevel): RoomsState {
  const cur = s.byId[roomId];
  if (!cur || cur.notifications === level) return s;
  return put(s, { ...cur, notifications: level }, false);
}

export function setRetention(s: RoomsState, roomId: string, days: number | null): RoomsState {
  const cur = s.byId[roomId];
  if (!cur || (cur.retention_days ?? null) === days) return s;
  return put(s, { ...cur, retention_days: days }, false);
}

/** How many seqs an entry remembers from notification frames. */
const NOTIFIED_KEPT = 100;

export interface NotificationResult {
  state: RoomsState;
  /** The room is in the list (else: one the list does not know yet, a poll will). */
  known: boolean;
  /** It was counted as unread now (not a repeat, not read already, not in view). */
  counted: boolean;
}

/**
 * A `notification` frame (a message in a room the socket does not follow): the room's unread
 * count, and its mention count for a mention, go up once per message; its last message and
 * activity follow. The room version does not move (the frame has none): a poll or the room's
 * events settle the counts.
 */
export function applyNotification(s: RoomsState, f: NotificationFrame, ctx: EventContext): NotificationResult {
  const cur = s.byId[f.room_id];
  if (!cur) return { state: s, known: false, counted: false };
  // Frames come in log order: a seq the entry has already (not from a notification) was
  // counted by a poll or an event.
  if (f.sender_id === ctx.me || f.seq <= cur.read_seq || f.seq <= cur.last_seq) {
    return { state: s, known: true, counted: false };
  }
  const e: RoomEntry = { ...cur, notified: [...(cur.notified ?? []).slice(-(NOTIFIED_KEPT - 1)), f.seq] };
  e.last_seq = f.seq;
  e.last_message = { seq: f.seq, message_id: f.message_id, sender_id: f.sender_id, body: f.body, deleted: false, sent_at: ctx.now };
  const reorder = ctx.now > e.activity;
  if (reorder) e.activity = ctx.now;
  const counted = ctx.viewing !== f.room_id;
  if (counted) {
    e.unread_count += 1;
    if (isMentionReason(f.reason)) e.unread_mentions += 1;
  }
  return { state: put(s, e, reorder), known: true, counted };
}

/**
 * A `member_updated` frame: the user's names wherever the list shows them (a direct room's
 * other person, the sender of a last message: in every room, names are the user's), the
 * direct room's other person's avatar, and,
 * erased, the last message of the frame's room read as "[erased]". No version or position
 * moves (the frame is no room event); the same state when nothing changed.
 */
export function applyMemberUpdate(s: RoomsState, f: MemberUpdatedFrame): RoomsState {
  let byId: Record<string, RoomEntry> | null = null;
  for (const id of s.order) {
    const cur = s.byId[id]!;
    let e = cur;
    const other = e.other_user;
    if (other && other.user_id === f.user_id) {
      const username = f.username || other.username;
      const display_name = f.display_name !== undefined ? f.display_name || username : other.display_name;
      if (other.username !== username || other.display_name !== display_name) e = { ...e, other_user: { ...other, username, display_name } };
      if (f.avatar_url !== undefined && (other.avatar_url ?? null) !== f.avatar_url) {
        e = { ...e, other_user: { ...e.other_user!, avatar_url: f.avatar_url } };
      }
    }
    const last = e.last_message;
    if (last && last.sender_id === f.user_id) {
      let next = last;
      const username = f.username || last.sender_username;
      const display_name = f.display_name !== undefined ? f.display_name || username : last.sender_display_name;
      if (username && (last.sender_username !== username || last.sender_display_name !== display_name)) {
        next = { ...next, sender_username: username, sender_display_name: display_name };
      }
      if (f.erased && id === f.room_id && !last.deleted && last.body !== ERASED_TEXT) next = { ...next, body: ERASED_TEXT };
      if (next !== last) e = { ...e, last_message: next };
    }
    if (e !== cur) {
      byId ??= { ...s.byId };
      byId[id] = e;
    }
  }
  return byId ? { ...s, byId } : s;
}

/** The name a room is shown by: a direct room's other person, a group room's name. */
export function roomLabel(r: Pick<MyRoom, 'kind' | 'name' | 'other_user'>): string {
  if (r.kind === 'direct') return r.other_user?.display_name || r.other_user?.username || 'Direct message';
  return r.name || 'Untitled room';
}

/** The `data-room-name` of a room: a direct room's other username, a group room's name. */
export function roomKey(r: Pick<MyRoom, 'kind' | 'name' | 'other_user'>): string {
  if (r.kind === 'direct') return r.other_user?.username ?? '';
  return r.name;
}
