import { describe, expect, it } from 'vitest';
import type { EventFrame } from '../types';
import {
  beginResync,
  classify,
  completeResync,
  createResume,
  markApplied,
  onSubscribed,
  socketClosed,
  subscribeFrame,
  subscribeFrames,
  trackRoom,
  untrackRoom,
} from './resume';

function f(version: number, room = 'r1', position = version * 100): EventFrame {
  return { type: 'message_sent', room_id: room, version, position, data: {} };
}

/** What a client loop does with a frame: apply new ones, drop old ones. */
function feed(s: ReturnType<typeof createResume>, frames: EventFrame[]): number[] {
  const applied: number[] = [];
  for (const fr of frames) {
    const v = classify(s, fr);
    if (v === 'apply') {
      applied.push(fr.version);
      markApplied(s, fr);
    }
  }
  return applied;
}

describe('subscribe frames', () => {
  it('resumes after the REST version with its epoch', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 7, position: 70, epoch: 3 });
    expect(subscribeFrame(s, 'r1')).toEqual({ type: 'subscribe', room_id: 'r1', after_version: 7, epoch: 3 });
  });

  it('omits the epoch when the read did not carry one', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 2, position: 20, epoch: null });
    expect(subscribeFrame(s, 'r1')).toEqual({ type: 'subscribe', room_id: 'r1', after_version: 2 });
  });

  it('after applying events, a reconnect resumes after the last applied version', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 7, position: 70, epoch: 3 });
    trackRoom(s, 'r2', { version: 1, position: 10, epoch: 3 });
    feed(s, [f(8), f(9)]);
    socketClosed(s);
    expect(subscribeFrames(s)).toEqual([
      { type: 'subscribe', room_id: 'r1', after_version: 9, epoch: 3 },
      { type: 'subscribe', room_id: 'r2', after_version: 1, epoch: 3 },
    ]);
  });

  it('a later poll does not move a tracked room (the feed does)', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 7, position: 70, epoch: 3 });
    trackRoom(s, 'r1', { version: 12, position: 120, epoch: 3 });
    expect(subscribeFrame(s, 'r1').after_version).toBe(7);
  });

  it('untracked rooms are not resubscribed', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 7, position: 70, epoch: 3 });
    untrackRoom(s, 'r1');
    expect(subscribeFrames(s)).toEqual([]);
  });

  it('tracks liveness per socket', () => {
    const s = createResume();
    const r = trackRoom(s, 'r1', { version: 1, position: 1, epoch: 1 });
    onSubscribed(s, 'r1');
    expect(r.live).toBe(true);
    socketClosed(s);
    expect(r.live).toBe(false);
  });
});

describe('dropping applied events', () => {
  it('a back-fill overlapping what was applied yields no duplicate and no gap', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 5, position: 50, epoch: 1 });
    expect(feed(s, [f(4), f(5), f(6), f(7)])).toEqual([6, 7]);
    // reconnect: the server back-fills from after_version 7, but say frames repeat
    expect(feed(s, [f(7), f(8), f(8), f(9)])).toEqual([8, 9]);
  });

  it('frames of unknown rooms are reported, not applied', () => {
    const s = createResume();
    expect(classify(s, f(1, 'nope'))).toBe('unknown');
  });

  it('a skipped version is a gap', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 5, position: 50, epoch: 1 });
    expect(classify(s, f(7))).toBe('gap');
  });
});

describe('resync', () => {
  it('reloads with the position of the last event received, then applies only newer live events', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 5, position: 50, epoch: 1 });
    feed(s, [f(6, 'r1', 61)]);
    const minPosition = beginResync(s, 'r1');
    expect(minPosition).toBe(61);
    // live events keep coming while the room reloads
    expect(classify(s, f(7, 'r1', 70))).toBe('buffer');
    expect(classify(s, f(8, 'r1', 80))).toBe('buffer');
    expect(classify(s, f(9, 'r1', 90))).toBe('buffer');
    // the reload reflects version 8 in epoch 2
    const done = completeResync(s, 'r1', { version: 8, position: 80, epoch: 2 });
    expect(done.apply.map((x) => x.version)).toEqual([9]);
    expect(done.again).toBeNull();
    expect(subscribeFrame(s, 'r1')).toEqual({ type: 'subscribe', room_id: 'r1', after_version: 9, epoch: 2 });
    expect(feed(s, [f(9), f(10)])).toEqual([10]);
  });

  it('a second resync during a reload asks for one more reload', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 5, position: 50, epoch: 1 });
    expect(beginResync(s, 'r1')).toBe(50);
    expect(beginResync(s, 'r1')).toBeNull();
    const done = completeResync(s, 'r1', { version: 9, position: 90, epoch: 2 });
    expect(done.again).toBe(90);
    expect(classify(s, f(10))).toBe('buffer');
    const done2 = completeResync(s, 'r1', { version: 10, position: 100, epoch: 2 });
    expect(done2).toEqual({ apply: [], again: null });
    expect(classify(s, f(11))).toBe('apply');
  });

  it('a reload older than the buffered live events reloads again', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 5, position: 50, epoch: 1 });
    beginResync(s, 'r1');
    // too far behind: live events start well after what the reload will show
    classify(s, f(2001, 'r1', 20010));
    const done = completeResync(s, 'r1', { version: 1990, position: 19900, epoch: 1 });
    expect(done.apply).toEqual([]);
    expect(done.again).toBe(20010);
    const done2 = completeResync(s, 'r1', { version: 2001, position: 20010, epoch: 1 });
    expect(done2).toEqual({ apply: [], again: null });
  });

  it('a gap starts a resync that keeps the frame that revealed it', () => {
    const s = createResume();
    trackRoom(s, 'r1', { version: 5, position: 50, epoch: 1 });
    const gap = f(8, 'r1', 80);
    expect(classify(s, gap)).toBe('gap');
    expect(beginResync(s, 'r1', gap)).toBe(80);
    const done = completeResync(s, 'r1', { version: 7, position: 70, epoch: 1 });
    expect(done.apply.map((x) => x.version)).toEqual([8]);
  });
});
