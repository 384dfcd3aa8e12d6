import { describe, expect, it } from 'vitest';
import {
  createTypingThrottle,
  TYPING_SEND_MS,
  TYPING_SHOW_MS,
  typingDue,
  typingExpired,
  typingMessageSent,
  typingSeen,
  typingStopped,
} from './typing';

describe('the typing throttle', () => {
  it('lets one notice per room through every TYPING_SEND_MS while typing', () => {
    const t = createTypingThrottle();
    const t0 = 1_000; // a clock near zero must not count as "just sent"
    expect(typingDue(t, 'r1', t0)).toBe(true);
    expect(typingDue(t, 'r1', t0 + 1)).toBe(false);
    expect(typingDue(t, 'r1', t0 + TYPING_SEND_MS - 1)).toBe(false);
    expect(typingDue(t, 'r1', t0 + TYPING_SEND_MS)).toBe(true);
    expect(typingDue(t, 'r1', t0 + TYPING_SEND_MS + 1)).toBe(false);
  });

  it('keeps each room apart', () => {
    const t = createTypingThrottle();
    expect(typingDue(t, 'r1', 10_000)).toBe(true);
    expect(typingDue(t, 'r2', 10_001)).toBe(true);
    expect(typingDue(t, 'r1', 10_002)).toBe(false);
    expect(typingDue(t, 'r2', 10_003)).toBe(false);
  });

  it('a sent message lets the next keystroke notify at once, in that room only', () => {
    const t = createTypingThrottle();
    expect(typingDue(t, 'r1', 10_000)).toBe(true);
    expect(typingDue(t, 'r2', 10_000)).toBe(true);
    typingMessageSent(t, 'r1');
    expect(typingDue(t, 'r1', 10_500)).toBe(true);
    expect(typingDue(t, 'r2', 10_500)).toBe(false);
    // ...and then it throttles again from that notice.
    expect(typingDue(t, 'r1', 11_000)).toBe(false);
    expect(typingDue(t, 'r1', 10_500 + TYPING_SEND_MS)).toBe(true);
  });

  it('a message sent in a room nobody typed in changes nothing', () => {
    const t = createTypingThrottle();
    typingMessageSent(t, 'r1');
    expect(typingDue(t, 'r1', 5)).toBe(true);
  });

  it('takes another interval when given one', () => {
    const t = createTypingThrottle();
    expect(typingDue(t, 'r1', 10_000, 100)).toBe(true);
    expect(typingDue(t, 'r1', 10_099, 100)).toBe(false);
    expect(typingDue(t, 'r1', 10_100, 100)).toBe(true);
  });
});

describe('who shows as typing', () => {
  it('shows someone for TYPING_SHOW_MS after each notice', () => {
    let s = typingSeen({}, 'r1', 'bob', 1_000);
    expect(s).toEqual({ r1: { bob: 1_000 + TYPING_SHOW_MS } });
    s = typingSeen(s, 'r1', 'carol', 2_000);
    s = typingSeen(s, 'r1', 'bob', 3_000);
    expect(s).toEqual({ r1: { bob: 3_000 + TYPING_SHOW_MS, carol: 2_000 + TYPING_SHOW_MS } });
  });

  it('their message stops it at once; nothing changes for someone not typing', () => {
    const s = typingSeen(typingSeen({}, 'r1', 'bob', 1_000), 'r1', 'carol', 1_000);
    const after = typingStopped(s, 'r1', 'bob');
    expect(after).toEqual({ r1: { carol: 1_000 + TYPING_SHOW_MS } });
    expect(s.r1!.bob).toBe(1_000 + TYPING_SHOW_MS); // not changed in place
    expect(typingStopped(after, 'r1', 'bob')).toBe(after);
    expect(typingStopped(after, 'r2', 'bob')).toBe(after);
  });

  it('expires who has not typed for TYPING_SHOW_MS, and says whether to look again', () => {
    const s = typingSeen(typingSeen({}, 'r1', 'bob', 1_000), 'r2', 'carol', 2_000);
    const early = typingExpired(s, 1_000 + TYPING_SHOW_MS - 1);
    expect(early).toEqual({ shown: s, changed: false, left: true });
    expect(early.shown).toBe(s);
    expect(typingExpired(s, 1_000 + TYPING_SHOW_MS)).toEqual({ shown: { r2: { carol: 2_000 + TYPING_SHOW_MS } }, changed: true, left: true });
    expect(typingExpired(s, 2_000 + TYPING_SHOW_MS)).toEqual({ shown: {}, changed: true, left: false });
    expect(typingExpired({}, 0)).toEqual({ shown: {}, changed: false, left: false });
  });
});
