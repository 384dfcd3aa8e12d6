// Where each room's live feed stands: the last room version applied (from the REST read
// the room's state came from, then from the feed), the log position of the last event
// received, and the epoch (`Chat-Epoch`) of the REST read. From it: the subscribe frame
// to send (on connect and on every reconnect), whether a frame is new or already
// applied, and the bookkeeping of a resync (reload over REST, then apply only the live
// events newer than the reload).
//
// Mutable on purpose: it is touched once per frame and never rendered.

import type { EventFrame } from '../types';

export interface RoomResume {
  /** Last room version applied. */
  version: number;
  /** Log position of the last event received (or of the REST read). */
  position: number;
  /** Chat-Epoch of the REST read the state came from; null when unknown. */
  epoch: number | null;
  /** A reload over REST is under way: live events wait in `buffer`. */
  resyncing: boolean;
  /** Another resync was asked for while one was under way. */
  resyncAgain: boolean;
  buffer: EventFrame[];
  /** The feed is live for this room on the current socket (after `subscribed`). */
  live: boolean;
}

export type ResumeState = Map<string, RoomResume>;

export function createResume(): ResumeState {
  return new Map();
}

export interface RestSnapshot {
  version: number;
  position: number;
  epoch: number | null;
}

/**
 * Records the state of a room read over REST (the room list, a room answer). A room
 * already tracked keeps its own (newer or equal) version: the feed, not a poll, moves it.
 */
export function trackRoom(s: ResumeState, roomId: string, snap: RestSnapshot): RoomResume {
  const cur = s.get(roomId);
  if (cur) return cur;
  const r: RoomResume = {
    version: snap.version,
    position: snap.position,
    epoch: snap.epoch,
    resyncing: false,
    resyncAgain: false,
    buffer: [],
    live: false,
  };
  s.set(roomId, r);
  return r;
}

export function untrackRoom(s: ResumeState, roomId: string): void {
  s.delete(roomId);
}

export interface SubscribeFrame {
  type: 'subscribe';
  room_id: string;
  after_version?: number;
  epoch?: number;
}

/** The frame that resumes a room exactly where its applied state ends. */
export function subscribeFrame(s: ResumeState, roomId: string): SubscribeFrame {
  const r = s.get(roomId);
  if (!r) return { type: 'subscribe', room_id: roomId };
  const f: SubscribeFrame = { type: 'subscribe', room_id: roomId, after_version: r.version };
  if (r.epoch !== null) f.epoch = r.epoch;
  return f;
}

/** Every subscribe frame to send on a (re)connect. */
export function subscribeFrames(s: ResumeState): SubscribeFrame[] {
  return [...s.keys()].map((id) => subscribeFrame(s, id));
}

/** The socket closed: nothing is live until the next `subscribed`. */
export function socketClosed(s: ResumeState): void {
  for (const r of s.values()) r.live = false;
}

export function onSubscribed(s: ResumeState, roomId: string): void {
  const r = s.get(roomId);
  if (r) r.live = true;
}

export type Verdict =
  /** New: apply it (then call `markApplied`). */
  | 'apply'
  /** Already applied (version at or below ours): drop it. */
  | 'drop'
  /** A resync is under way: kept until the reload lands. */
  | 'buffer'
  /** Not a room we follow. */
  | 'unknown'
  /** A version was skipped: the room must be reloaded (call `beginResync`). */
  | 'gap';

/** Decides what to do with a stored-event frame; buffers it during a resync. */
export function classify(s: ResumeState, f: EventFrame): Verdict {
  const r = s.get(f.room_id);
  if (!r) return 'unknown';
  if (r.resyncing) {
    if (f.version > r.version && !r.buffer.some((b) => b.version === f.version)) r.buffer.push(f);
    if (f.position > r.position) r.position = f.position;
    return 'buffer';
  }
  if (f.version <= r.version) return 'drop';
  if (f.version > r.version + 1) return 'gap';
  return 'apply';
}

export function markApplied(s: ResumeState, f: EventFrame): void {
  const r = s.get(f.room_id);
  if (!r) return;
  if (f.version > r.version) r.version = f.version;
  if (f.position > r.position) r.position = f.position;
}

/**
 * A `resync` frame (or a detected gap): returns the `min_position` to reload the room
 * with (the position of the last event received), or null when a reload is already
 * under way (it will run once more when it lands).
 */
export function beginResync(s: ResumeState, roomId: string, gapFrame?: EventFrame): number | null {
  const r = s.get(roomId);
  if (!r) return null;
  if (gapFrame) {
    r.buffer.push(gapFrame);
    if (gapFrame.position > r.position) r.position = gapFrame.position;
  }
  if (r.resyncing) {
    r.resyncAgain = true;
    return null;
  }
  r.resyncing = true;
  return r.position;
}

export interface ResyncDone {
  /** Buffered live events newer than the reload, in version order: apply them. */
  apply: EventFrame[];
  /** Reload once more (another resync arrived meanwhile); its min_position. */
  again: number | null;
}

/** The REST reload landed: adopt its version and epoch, release newer buffered events. */
export function completeResync(s: ResumeState, roomId: string, snap: RestSnapshot): ResyncDone {
  const r = s.get(roomId);
  if (!r) return { apply: [], again: null };
  r.version = snap.version;
  r.epoch = snap.epoch;
  if (snap.position > r.position) r.position = snap.position;
  const pending = r.buffer.filter((f) => f.version > snap.version).sort((a, b) => a.version - b.version);
  r.buffer = [];
  r.resyncing = false;
  const apply: EventFrame[] = [];
  for (const f of pending) {
    if (f.version === r.version + 1) {
      apply.push(f);
      r.version = f.version;
      if (f.position > r.position) r.position = f.position;
    }
  }
  if (r.resyncAgain || apply.length < pending.length) {
    r.resyncAgain = false;
    r.resyncing = true;
    return { apply, again: r.position };
  }
  return { apply, again: null };
}

/** The reload failed: keep the buffer and stay in resync (the caller retries). */
export function resyncFailed(s: ResumeState, roomId: string): number | null {
  const r = s.get(roomId);
  return r ? r.position : null;
}
