// Read receipts: how far each member of a room has read (`GET /v1/rooms/{id}/receipts`, then
// the live `read_marker_moved` frames), and from it who has seen one's own messages. Members
// who keep their receipts private are never listed and their markers never reach others.
// Pure functions over immutable maps.

import type { Receipt } from '../types';

/** By user id: the seq they have read up to. */
export type Receipts = Readonly<Record<string, number>>;

/** The receipts of a `GET .../receipts` answer. */
export function receiptsFrom(list: readonly Receipt[]): Receipts {
  const out: Record<string, number> = {};
  for (const r of list) out[r.user_id] = Math.max(out[r.user_id] ?? 0, r.seq);
  return out;
}

/**
 * A `GET .../receipts` answer over what the feed applied meanwhile: for each member listed,
 * the furthest of both (a marker never moves back). A member it does not list is dropped (left,
 * or keeps receipts private now) unless their marker moved live while it was read (`movedLive`:
 * the answer may predate it).
 */
export function mergeReceipts(live: Receipts | undefined, answer: readonly Receipt[], movedLive: Iterable<string> = []): Receipts {
  const out: Record<string, number> = { ...receiptsFrom(answer) };
  if (!live) return out;
  for (const id of Object.keys(out)) out[id] = Math.max(out[id]!, live[id] ?? 0);
  for (const id of movedLive) if (live[id] !== undefined) out[id] = Math.max(out[id] ?? 0, live[id]);
  return out;
}

/** A member's marker moved to `seq` (never back); the same object when nothing changed. */
export function moveReceipt(r: Receipts, userId: string, seq: number): Receipts {
  if ((r[userId] ?? 0) >= seq) return r;
  return { ...r, [userId]: seq };
}

/** A member left or was removed: their receipt is no longer shown. */
export function dropReceipt(r: Receipts, userId: string): Receipts {
  if (!(userId in r)) return r;
  const out = { ...r };
  delete out[userId];
  return out;
}

/**
 * Who has seen `me`'s messages: by the seq of one of them, the other members whose receipt
 * reaches it (receipt seq ≥ message seq), each shown once, under the newest of `me`'s
 * messages they have read. Ids in a stable order (furthest read first, then by id).
 * `messages`: ascending seq (a timeline's confirmed messages).
 */
export function seenBy(messages: readonly { seq: number; sender_id: string; deleted?: boolean }[], receipts: Receipts, me: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const mine: number[] = [];
  for (const m of messages) if (m.sender_id === me && !m.deleted) mine.push(m.seq);
  if (mine.length === 0) return out;
  const readers = Object.entries(receipts)
    .filter(([id]) => id !== me)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  for (const [id, seq] of readers) {
    const at = newestAtOrBelow(mine, seq);
    if (at === null) continue;
    const list = out.get(at);
    if (list) list.push(id);
    else out.set(at, [id]);
  }
  return out;
}

/** The largest of ascending `seqs` that is ≤ `seq`, or null. */
function newestAtOrBelow(seqs: readonly number[], seq: number): number | null {
  let lo = 0;
  let hi = seqs.length - 1;
  let found: number | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (seqs[mid]! <= seq) {
      found = seqs[mid]!;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}
