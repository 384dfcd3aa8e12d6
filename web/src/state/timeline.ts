// A room's timeline: confirmed messages ordered by seq, plus optimistic (pending)
// messages keyed by client_msg_id. Pure functions, no I/O: every change returns a new
// Timeline (or the same object when nothing changed, so memoised views skip work), and
// messages that did not change keep their identity.
//
// Versions. Every message carries `version`, the room stream version its state
// reflects (from a history page or from the live feed, which delivers a room's events
// in order and without gaps). A feed event at or below it is already applied and is
// dropped. The answer to one's own command (an edit, a delete, a reaction) is also
// applied at once ("local" events), ahead of the feed; such changes record their own
// version per field (`bodyVersion`, `reactOps`) without moving `version`, so an older
// feed event of another field that arrives afterwards still applies, and the feed's copy
// of the local change is recognised and dropped.
//
// Retention. `messages_expired` (the room's retention period passed) removes the messages up
// to its seq; the timeline remembers how far, so an older page does not bring them back.
//
// Erasure. A member erased (a `member_updated` frame with `erased`, which is no room event
// and moves no version) has their loaded messages read as "[erased]" at once; the timeline
// remembers them, so a page or an event that still carries their words (read before the
// erasure reached the read models) is shown erased too.

import { ERASED_TEXT, type Attachment, type EventFrame, type Message } from '../types';

export interface ReactOp {
  v: number;
  add: boolean;
}

export interface TlMessage extends Message {
  /** The sender's client_msg_id, when this client saw it (the live feed echoes it). */
  client_msg_id?: string;
  /** Version of the body/deleted state (≥ version when a local change is ahead). */
  bodyVersion: number;
  /** Local reaction changes ahead of `version`, by `emoji\nuser_id`. */
  reactOps?: Record<string, ReactOp>;
  /** The log position it was sent at, when it came live: a read about it (an attachment's
   * download) waits until the read models have it. */
  position?: number;
}

export type PendingStatus = 'pending' | 'failed';

export interface PendingMessage {
  client_msg_id: string;
  body: string;
  reply_to: string | null;
  /** Uploaded already; sent with the message. */
  attachments?: Attachment[];
  status: PendingStatus;
  created_at: string;
  error?: string;
}

export interface Timeline {
  /** Confirmed messages, ascending seq, one per seq. */
  messages: TlMessage[];
  /** Optimistic messages not confirmed yet, in the order they were written. */
  pending: PendingMessage[];
  /** Senders erased while the room was loaded: their messages read as "[erased]". */
  erased?: readonly string[];
  /** Messages up to this seq expired (the room's retention): gone, and not taken back from
   * a page read before the expiry reached the server's history. */
  expiredUpTo?: number;
}

export function emptyTimeline(): Timeline {
  return { messages: [], pending: [] };
}

/** Index of `seq` in `msgs`, or `-(insertion point) - 1` when absent. */
export function indexOfSeq(msgs: readonly { seq: number }[], seq: number): number {
  let lo = 0;
  let hi = msgs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = msgs[mid]!.seq;
    if (s === seq) return mid;
    if (s < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return -lo - 1;
}

export function findBySeq(tl: Timeline, seq: number): TlMessage | undefined {
  const i = indexOfSeq(tl.messages, seq);
  return i >= 0 ? tl.messages[i] : undefined;
}

export function findById(tl: Timeline, messageId: string): TlMessage | undefined {
  // Newest first: replies and actions mostly concern recent messages.
  for (let i = tl.messages.length - 1; i >= 0; i--) {
    if (tl.messages[i]!.message_id === messageId) return tl.messages[i];
  }
  return undefined;
}

export function fromHistory(m: Message): TlMessage {
  return {
    ...m,
    reactions: m.reactions ?? {},
    reply_to: m.reply_to ?? null,
    edited_at: m.edited_at ?? null,
    bodyVersion: m.version,
  };
}

/** Seq of the oldest loaded message, or null when nothing is loaded. */
export function oldestSeq(tl: Timeline): number | null {
  return tl.messages.length ? tl.messages[0]!.seq : null;
}

export function newestSeq(tl: Timeline): number | null {
  return tl.messages.length ? tl.messages[tl.messages.length - 1]!.seq : null;
}

/** Seqs are contiguous from 1 in a room: anything above 1 (or above the expired ones) means
 * older ones exist. */
export function hasOlder(tl: Timeline): boolean {
  return tl.messages.length > 0 && tl.messages[0]!.seq > (tl.expiredUpTo ?? 0) + 1;
}

/** The timeline knows that nothing at or below `seq` is kept (the room's expiry, or an empty
 * page of older messages): it asks for no older page. */
export function startsAfter(tl: Timeline, seq: number): Timeline {
  if (seq <= (tl.expiredUpTo ?? 0)) return tl;
  return { ...tl, messages: tl.messages.filter((m) => m.seq > seq), expiredUpTo: seq };
}

/** The seqs after which a stretch is missing (loaded around a search hit, say). */
export function gapsAfter(tl: Timeline): number[] {
  const out: number[] = [];
  const m = tl.messages;
  for (let i = 1; i < m.length; i++) {
    if (m[i]!.seq > m[i - 1]!.seq + 1) out.push(m[i - 1]!.seq);
  }
  return out;
}

/**
 * A message as it reads once its sender is erased: body and attachment names "[erased]"
 * (a deleted message stays a tombstone); ids, seq, versions and reactions as they were.
 * The same object when it reads so already.
 */
export function erasedMessage<M extends Message>(m: M): M {
  const body = m.deleted ? m.body : ERASED_TEXT;
  const atts = m.attachments;
  const attsErased = !atts || atts.every((a) => a.name === ERASED_TEXT);
  if (body === m.body && attsErased) return m;
  return { ...m, body, attachments: attsErased ? atts : atts!.map((a) => (a.name === ERASED_TEXT ? a : { ...a, name: ERASED_TEXT })) };
}

function isErased(tl: Timeline, senderId: string): boolean {
  return tl.erased !== undefined && tl.erased.includes(senderId);
}

/** `m` as this timeline shows it (erased when its sender is). */
function masked<M extends Message>(tl: Timeline, m: M): M {
  return isErased(tl, m.sender_id) ? erasedMessage(m) : m;
}

/**
 * `userId` was erased: their loaded messages read as "[erased]" (ids, seq, versions and
 * reactions kept), and so will any of theirs loaded or received from now on. Idempotent.
 */
export function eraseSender(tl: Timeline, userId: string): Timeline {
  let messages = tl.messages;
  for (let i = 0; i < messages.length; i++) {
    const cur = messages[i]!;
    if (cur.sender_id !== userId) continue;
    const next = erasedMessage(cur);
    if (next === cur) continue;
    if (messages === tl.messages) messages = messages.slice();
    messages[i] = next;
  }
  const known = isErased(tl, userId);
  if (known && messages === tl.messages) return tl;
  return { ...tl, messages, erased: known ? tl.erased : [...(tl.erased ?? []), userId] };
}

function withoutPending(pending: PendingMessage[], clientMsgId: string | undefined): PendingMessage[] {
  if (!clientMsgId) return pending;
  const i = pending.findIndex((p) => p.client_msg_id === clientMsgId);
  if (i < 0) return pending;
  return [...pending.slice(0, i), ...pending.slice(i + 1)];
}

/** Re-applies local reaction changes that are ahead of a newer base state. */
function reapplyOps(msg: TlMessage): TlMessage {
  if (!msg.reactOps) return msg;
  const ops: Record<string, ReactOp> = {};
  let reactions = msg.reactions;
  let kept = false;
  for (const [key, op] of Object.entries(msg.reactOps)) {
    if (op.v <= msg.version) continue;
    kept = true;
    ops[key] = op;
    const [emoji, user] = key.split('\n') as [string, string];
    reactions = setReaction(reactions, emoji, user, op.add);
  }
  return { ...msg, reactions, reactOps: kept ? ops : undefined };
}

/**
 * Merges a history page (any order) into the timeline. A message already there is
 * replaced only by a strictly newer version of it; local changes ahead of the page are
 * kept.
 */
export function mergePage(tl: Timeline, page: readonly Message[]): Timeline {
  const expired = tl.expiredUpTo ?? 0;
  if (expired > 0) page = page.filter((m) => m.seq > expired);
  if (page.length === 0) return tl;
  let messages = tl.messages;
  let changed = false;
  const incoming = [...page].sort((a, b) => a.seq - b.seq);
  if (tl.erased?.length) for (let i = 0; i < incoming.length; i++) incoming[i] = masked(tl, incoming[i]!);
  // Fast path for the common cases: the page lies entirely before or after what is loaded.
  const first = messages[0];
  const last = messages[messages.length - 1];
  if (!first || incoming[incoming.length - 1]!.seq < first.seq) {
    messages = [...incoming.map(fromHistory), ...messages];
    return { ...tl, messages };
  }
  if (incoming[0]!.seq > last!.seq) {
    messages = [...messages, ...incoming.map(fromHistory)];
    return { ...tl, messages };
  }
  const copy = messages.slice();
  const inserts: TlMessage[] = [];
  for (const m of incoming) {
    const i = indexOfSeq(copy, m.seq);
    if (i < 0) {
      inserts.push(fromHistory(m));
      continue;
    }
    const cur = copy[i]!;
    if (m.version <= cur.version) continue;
    let next: TlMessage = { ...fromHistory(m), client_msg_id: cur.client_msg_id, reactOps: cur.reactOps };
    // History pages carry no mentions: keep what the feed said of them.
    if (next.mentions === undefined && cur.mentions !== undefined) next = { ...next, mentions: cur.mentions, mentions_room: cur.mentions_room };
    if (cur.bodyVersion > m.version) {
      next = {
        ...next,
        body: cur.body,
        deleted: cur.deleted,
        edit_number: cur.edit_number,
        edited_at: cur.edited_at,
        bodyVersion: cur.bodyVersion,
      };
    }
    copy[i] = reapplyOps(next);
    changed = true;
  }
  if (inserts.length) {
    copy.push(...inserts);
    copy.sort((a, b) => a.seq - b.seq);
    changed = true;
  }
  return changed ? { ...tl, messages: copy } : tl;
}

function setReaction(
  reactions: Record<string, string[]>,
  emoji: string,
  user: string,
  add: boolean,
): Record<string, string[]> {
  const users = reactions[emoji] ?? [];
  const has = users.includes(user);
  if (add === has) return reactions;
  const next = { ...reactions };
  if (add) next[emoji] = [...users, user];
  else {
    const rest = users.filter((u) => u !== user);
    if (rest.length) next[emoji] = rest;
    else delete next[emoji];
  }
  return next;
}

function replaceAt(tl: Timeline, i: number, msg: TlMessage): Timeline {
  const messages = tl.messages.slice();
  messages[i] = msg;
  return { ...tl, messages };
}

export interface ApplyOptions {
  /** The signed-in user: their pending message is confirmed by its echo. */
  me: string;
  /**
   * True for the answer to one's own command, applied ahead of the feed; false (the
   * default) for an event of the live feed.
   */
  local?: boolean;
  /** When the event was seen (feed frames carry no timestamp); ISO 8601. */
  now?: string;
}

/**
 * Applies one room event (a live-feed frame, or the answer to one's own command shaped
 * as one). Idempotent: applying it twice, or after a page that already reflects it,
 * changes nothing and returns the same Timeline.
 */
export function applyEvent(tl: Timeline, ev: EventFrame, opts: ApplyOptions): Timeline {
  const d = ev.data;
  const now = opts.now ?? new Date().toISOString();
  const local = opts.local === true;
  switch (ev.type) {
    case 'message_sent': {
      const seq = d.seq as number;
      const clientMsgId = typeof d.client_msg_id === 'string' ? d.client_msg_id : undefined;
      const mine = d.sender_id === opts.me;
      const pending = mine ? withoutPending(tl.pending, clientMsgId) : tl.pending;
      const i = indexOfSeq(tl.messages, seq);
      if (i >= 0) return pending === tl.pending ? tl : { ...tl, pending };
      const msg: TlMessage = {
        seq,
        message_id: d.message_id as string,
        sender_id: d.sender_id as string,
        body: (d.body as string) ?? '',
        deleted: false,
        reply_to: (d.reply_to as string | null) ?? null,
        edited_at: null,
        edit_number: 0,
        reactions: {},
        sent_at: typeof d.sent_at === 'string' ? d.sent_at : now,
        version: ev.version,
        bodyVersion: ev.version,
        client_msg_id: clientMsgId,
        attachments: Array.isArray(d.attachments) ? (d.attachments as Attachment[]) : [],
        position: ev.position > 0 ? ev.position : undefined,
        // The server's resolution (absent from the frame when empty).
        mentions: Array.isArray(d.mentions) ? d.mentions.filter((u): u is string => typeof u === 'string') : [],
        mentions_room: d.mentions_room === true,
      };
      const at = -i - 1;
      const messages = [...tl.messages.slice(0, at), masked(tl, msg), ...tl.messages.slice(at)];
      return { ...tl, messages, pending };
    }
    case 'message_edited':
    case 'message_deleted': {
      const i = indexOfSeq(tl.messages, d.seq as number);
      if (i < 0) return tl;
      const cur = tl.messages[i]!;
      if (ev.version <= cur.version) return tl;
      let next: TlMessage = cur;
      if (ev.version > cur.bodyVersion) {
        next =
          ev.type === 'message_edited'
            ? {
                ...cur,
                body: d.body as string,
                edit_number: (d.edit_number as number) ?? cur.edit_number + 1,
                edited_at: typeof d.edited_at === 'string' ? d.edited_at : now,
                bodyVersion: ev.version,
              }
            : { ...cur, body: null, deleted: true, reactions: {}, attachments: [], bodyVersion: ev.version };
      }
      if (!local) next = { ...next, version: ev.version };
      if (next !== cur) next = masked(tl, next);
      return next === cur ? tl : replaceAt(tl, i, local ? next : reapplyOps(next));
    }
    case 'messages_expired':
      return startsAfter(tl, d.up_to_seq as number);
    case 'reaction_added':
    case 'reaction_removed': {
      const i = indexOfSeq(tl.messages, d.seq as number);
      if (i < 0) return tl;
      const cur = tl.messages[i]!;
      if (ev.version <= cur.version) return tl;
      const emoji = d.emoji as string;
      const user = d.user_id as string;
      const add = ev.type === 'reaction_added';
      const key = `${emoji}\n${user}`;
      const op = cur.reactOps?.[key];
      if (local) {
        if (op && op.v >= ev.version) return tl;
        return replaceAt(tl, i, {
          ...cur,
          reactions: setReaction(cur.reactions, emoji, user, add),
          reactOps: { ...cur.reactOps, [key]: { v: ev.version, add } },
        });
      }
      const reactions = op && op.v >= ev.version ? cur.reactions : setReaction(cur.reactions, emoji, user, add);
      return replaceAt(tl, i, reapplyOps({ ...cur, reactions, version: ev.version }));
    }
    default:
      return tl;
  }
}

// ---- optimistic sends ----

export function addPending(tl: Timeline, p: Omit<PendingMessage, 'status' | 'created_at'> & { created_at?: string }): Timeline {
  if (tl.pending.some((x) => x.client_msg_id === p.client_msg_id)) return tl;
  const entry: PendingMessage = {
    client_msg_id: p.client_msg_id,
    body: p.body,
    reply_to: p.reply_to,
    attachments: p.attachments,
    status: 'pending',
    created_at: p.created_at ?? new Date().toISOString(),
  };
  return { ...tl, pending: [...tl.pending, entry] };
}

export function setPendingStatus(tl: Timeline, clientMsgId: string, status: PendingStatus, error?: string): Timeline {
  const i = tl.pending.findIndex((p) => p.client_msg_id === clientMsgId);
  if (i < 0) return tl;
  const pending = tl.pending.slice();
  pending[i] = { ...pending[i]!, status, error };
  return { ...tl, pending };
}

/** The answer to `POST .../messages` confirms the pending message (if the echo did not already). */
export function confirmSend(
  tl: Timeline,
  args: {
    me: string;
    client_msg_id: string;
    body: string;
    reply_to: string | null;
    attachments?: Attachment[];
    answer: { message_id: string; seq: number; version: number; position: number };
    now?: string;
  },
): Timeline {
  return applyEvent(
    tl,
    {
      type: 'message_sent',
      room_id: '',
      version: args.answer.version,
      position: args.answer.position,
      data: {
        message_id: args.answer.message_id,
        seq: args.answer.seq,
        sender_id: args.me,
        body: args.body,
        reply_to: args.reply_to,
        client_msg_id: args.client_msg_id,
        attachments: args.attachments ?? [],
      },
    },
    { me: args.me, local: true, now: args.now },
  );
}

/** Drops every confirmed message (a resync) but keeps what is still pending. */
export function resetConfirmed(tl: Timeline): Timeline {
  return tl.erased ? { messages: [], pending: tl.pending, erased: tl.erased } : { messages: [], pending: tl.pending };
}
