import { describe, expect, it } from 'vitest';
import type { EventFrame, Message } from '../types';
import {
  addPending,
  applyEvent,
  confirmSend,
  emptyTimeline,
  eraseSender,
  findBySeq,
  gapsAfter,
  hasOlder,
  indexOfSeq,
  mergePage,
  resetConfirmed,
  setPendingStatus,
  startsAfter,
  type Timeline,
} from './timeline';

const ME = 'me';
const BOB = 'bob';

function msg(seq: number, over: Partial<Message> = {}): Message {
  return {
    seq,
    message_id: `m${seq}`,
    sender_id: BOB,
    body: `body ${seq}`,
    deleted: false,
    reply_to: null,
    edited_at: null,
    edit_number: 0,
    reactions: {},
    sent_at: `2026-01-01T00:00:${String(seq).padStart(2, '0')}Z`,
    version: seq + 10,
    ...over,
  };
}

function ev(type: string, version: number, data: Record<string, unknown>): EventFrame {
  return { type, room_id: 'r', version, position: version * 10, data };
}

function sent(seq: number, version: number, over: Record<string, unknown> = {}): EventFrame {
  return ev('message_sent', version, {
    seq,
    message_id: `m${seq}`,
    sender_id: BOB,
    body: `body ${seq}`,
    reply_to: null,
    client_msg_id: null,
    ...over,
  });
}

const seqs = (tl: Timeline) => tl.messages.map((m) => m.seq);

describe('ordering and pages', () => {
  it('keeps messages ordered by seq whatever order pages arrive in', () => {
    let tl = emptyTimeline();
    tl = mergePage(tl, [msg(10), msg(9), msg(8)]); // newest first, as the API answers
    expect(seqs(tl)).toEqual([8, 9, 10]);
    tl = mergePage(tl, [msg(7), msg(6), msg(5)]); // an older page
    expect(seqs(tl)).toEqual([5, 6, 7, 8, 9, 10]);
    tl = mergePage(tl, [msg(11), msg(12)]); // a newer one, oldest first
    expect(seqs(tl)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    tl = mergePage(tl, [msg(1), msg(2)]); // leaves a gap (a jump into history)
    expect(seqs(tl)).toEqual([1, 2, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(gapsAfter(tl)).toEqual([2]);
    tl = mergePage(tl, [msg(4), msg(3), msg(6)]); // overlapping fill
    expect(seqs(tl)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(gapsAfter(tl)).toEqual([]);
    expect(hasOlder(tl)).toBe(false);
  });

  it('a page that brings nothing new returns the same timeline and keeps message identity', () => {
    const tl = mergePage(emptyTimeline(), [msg(3), msg(2), msg(1)]);
    expect(mergePage(tl, [msg(2), msg(1)])).toBe(tl);
    const edited = mergePage(tl, [msg(2, { body: 'new', version: 99 })]);
    expect(edited).not.toBe(tl);
    expect(edited.messages[0]).toBe(tl.messages[0]);
    expect(edited.messages[1]!.body).toBe('new');
    expect(edited.messages[2]).toBe(tl.messages[2]);
  });

  it('an older copy of a message never replaces a newer one', () => {
    let tl = mergePage(emptyTimeline(), [msg(1, { body: 'edited', version: 20 })]);
    tl = mergePage(tl, [msg(1, { body: 'original', version: 11 })]);
    expect(tl.messages[0]!.body).toBe('edited');
  });

  it('hasOlder: seqs start at 1', () => {
    expect(hasOlder(mergePage(emptyTimeline(), [msg(2)]))).toBe(true);
    expect(hasOlder(mergePage(emptyTimeline(), [msg(1)]))).toBe(false);
    expect(hasOlder(emptyTimeline())).toBe(false);
  });

  it('indexOfSeq finds or gives the insertion point', () => {
    const m = [{ seq: 1 }, { seq: 3 }, { seq: 5 }];
    expect(indexOfSeq(m, 3)).toBe(1);
    expect(indexOfSeq(m, 4)).toBe(-3);
    expect(indexOfSeq(m, 0)).toBe(-1);
    expect(indexOfSeq(m, 9)).toBe(-4);
  });
});

describe('live messages', () => {
  it('inserts a live message in seq order and ignores it the second time', () => {
    let tl = mergePage(emptyTimeline(), [msg(1), msg(2)]);
    tl = applyEvent(tl, sent(3, 13), { me: ME });
    expect(seqs(tl)).toEqual([1, 2, 3]);
    const again = applyEvent(tl, sent(3, 13), { me: ME });
    expect(again).toBe(tl);
  });

  it('a live message already in a page is not doubled', () => {
    let tl = applyEvent(emptyTimeline(), sent(3, 13), { me: ME });
    tl = mergePage(tl, [msg(3), msg(2), msg(1)]);
    expect(seqs(tl)).toEqual([1, 2, 3]);
  });
});

describe('optimistic sends', () => {
  const answer = { message_id: 'm3', seq: 3, version: 13, position: 130 };
  const base = () =>
    addPending(mergePage(emptyTimeline(), [msg(1), msg(2)]), { client_msg_id: 'c1', body: 'hi', reply_to: null });

  it('the answer first, then the echo: one message', () => {
    let tl = base();
    expect(tl.pending).toHaveLength(1);
    tl = confirmSend(tl, { me: ME, client_msg_id: 'c1', body: 'hi', reply_to: null, answer });
    expect(tl.pending).toHaveLength(0);
    expect(seqs(tl)).toEqual([1, 2, 3]);
    expect(findBySeq(tl, 3)!.client_msg_id).toBe('c1');
    const after = applyEvent(tl, sent(3, 13, { sender_id: ME, body: 'hi', client_msg_id: 'c1' }), { me: ME });
    expect(after).toBe(tl);
  });

  it('the echo first, then the answer: one message', () => {
    let tl = base();
    tl = applyEvent(tl, sent(3, 13, { sender_id: ME, body: 'hi', client_msg_id: 'c1' }), { me: ME });
    expect(tl.pending).toHaveLength(0);
    expect(seqs(tl)).toEqual([1, 2, 3]);
    const after = confirmSend(tl, { me: ME, client_msg_id: 'c1', body: 'hi', reply_to: null, answer });
    expect(after).toBe(tl);
  });

  it('another user with the same client_msg_id does not confirm my pending message', () => {
    let tl = base();
    tl = applyEvent(tl, sent(3, 13, { sender_id: BOB, client_msg_id: 'c1' }), { me: ME });
    expect(tl.pending).toHaveLength(1);
  });

  it('a failed send keeps its client_msg_id and can be retried', () => {
    let tl = base();
    tl = setPendingStatus(tl, 'c1', 'failed', 'network');
    expect(tl.pending[0]).toMatchObject({ client_msg_id: 'c1', status: 'failed' });
    tl = setPendingStatus(tl, 'c1', 'pending');
    expect(tl.pending[0]!.status).toBe('pending');
    // adding the same id again is a no-op
    expect(addPending(tl, { client_msg_id: 'c1', body: 'hi', reply_to: null })).toBe(tl);
  });
});

describe('edits, deletes and reactions by version', () => {
  const loaded = () => mergePage(emptyTimeline(), [msg(1, { version: 11 }), msg(2, { version: 12 })]);

  it('applies an edit once', () => {
    let tl = loaded();
    const edit = ev('message_edited', 20, { seq: 1, message_id: 'm1', body: 'changed', edit_number: 1 });
    tl = applyEvent(tl, edit, { me: ME });
    expect(findBySeq(tl, 1)).toMatchObject({ body: 'changed', edit_number: 1, version: 20 });
    expect(applyEvent(tl, edit, { me: ME })).toBe(tl);
  });

  it('drops an event the page already reflects', () => {
    const tl = mergePage(emptyTimeline(), [msg(1, { body: 'v2', edit_number: 2, version: 30 })]);
    const old = ev('message_edited', 25, { seq: 1, message_id: 'm1', body: 'v1', edit_number: 1 });
    expect(applyEvent(tl, old, { me: ME })).toBe(tl);
  });

  it('deletes keep the place with a null body', () => {
    let tl = loaded();
    tl = applyEvent(tl, ev('message_deleted', 21, { seq: 2, message_id: 'm2' }), { me: ME });
    expect(findBySeq(tl, 2)).toMatchObject({ deleted: true, body: null });
    expect(seqs(tl)).toEqual([1, 2]);
  });

  it('reactions add, toggle off and are idempotent', () => {
    let tl = loaded();
    const add = ev('reaction_added', 20, { seq: 1, message_id: 'm1', emoji: '👍', user_id: ME });
    tl = applyEvent(tl, add, { me: ME });
    tl = applyEvent(tl, add, { me: ME });
    expect(findBySeq(tl, 1)!.reactions).toEqual({ '👍': [ME] });
    tl = applyEvent(tl, ev('reaction_added', 21, { seq: 1, message_id: 'm1', emoji: '👍', user_id: BOB }), { me: ME });
    expect(findBySeq(tl, 1)!.reactions).toEqual({ '👍': [ME, BOB] });
    tl = applyEvent(tl, ev('reaction_removed', 22, { seq: 1, message_id: 'm1', emoji: '👍', user_id: ME }), { me: ME });
    tl = applyEvent(tl, ev('reaction_removed', 23, { seq: 1, message_id: 'm1', emoji: '👍', user_id: BOB }), { me: ME });
    expect(findBySeq(tl, 1)!.reactions).toEqual({});
  });

  it('a local change applied ahead of the feed does not hide an older feed event', () => {
    let tl = loaded();
    // My reaction's answer (version 22) arrives before the feed delivered Bob's edit (21).
    const mine = ev('reaction_added', 22, { seq: 1, message_id: 'm1', emoji: '🎉', user_id: ME });
    tl = applyEvent(tl, mine, { me: ME, local: true });
    expect(findBySeq(tl, 1)!.reactions).toEqual({ '🎉': [ME] });
    tl = applyEvent(tl, ev('message_edited', 21, { seq: 1, message_id: 'm1', body: 'bob edited', edit_number: 1 }), { me: ME });
    expect(findBySeq(tl, 1)).toMatchObject({ body: 'bob edited', reactions: { '🎉': [ME] } });
    // Then the feed's copy of my reaction: nothing doubles.
    tl = applyEvent(tl, mine, { me: ME });
    expect(findBySeq(tl, 1)!.reactions).toEqual({ '🎉': [ME] });
    expect(findBySeq(tl, 1)!.version).toBe(22);
    expect(findBySeq(tl, 1)!.reactOps).toBeUndefined();
  });

  it('a local edit is not undone by an older feed edit arriving later', () => {
    let tl = loaded();
    tl = applyEvent(tl, ev('message_edited', 25, { seq: 1, message_id: 'm1', body: 'mine', edit_number: 2 }), {
      me: ME,
      local: true,
    });
    tl = applyEvent(tl, ev('message_edited', 24, { seq: 1, message_id: 'm1', body: 'older', edit_number: 1 }), { me: ME });
    expect(findBySeq(tl, 1)!.body).toBe('mine');
    tl = applyEvent(tl, ev('message_edited', 25, { seq: 1, message_id: 'm1', body: 'mine', edit_number: 2 }), { me: ME });
    expect(findBySeq(tl, 1)).toMatchObject({ body: 'mine', version: 25, edit_number: 2 });
  });

  it('a local reaction toggled off and on ends as the last answer says', () => {
    let tl = loaded();
    const e = (type: string, v: number) => ev(type, v, { seq: 2, message_id: 'm2', emoji: '❤️', user_id: ME });
    tl = applyEvent(tl, e('reaction_added', 30), { me: ME, local: true });
    tl = applyEvent(tl, e('reaction_removed', 31), { me: ME, local: true });
    tl = applyEvent(tl, e('reaction_added', 32), { me: ME, local: true });
    // the feed now delivers all three in order
    tl = applyEvent(tl, e('reaction_added', 30), { me: ME });
    expect(findBySeq(tl, 2)!.reactions).toEqual({ '❤️': [ME] });
    tl = applyEvent(tl, e('reaction_removed', 31), { me: ME });
    expect(findBySeq(tl, 2)!.reactions).toEqual({ '❤️': [ME] });
    tl = applyEvent(tl, e('reaction_added', 32), { me: ME });
    expect(findBySeq(tl, 2)!.reactions).toEqual({ '❤️': [ME] });
  });

  it('events for messages not loaded are ignored', () => {
    const tl = loaded();
    expect(applyEvent(tl, ev('message_edited', 40, { seq: 9, message_id: 'm9', body: 'x' }), { me: ME })).toBe(tl);
  });

  it('a newer page keeps a local change that is ahead of it', () => {
    let tl = loaded();
    tl = applyEvent(tl, ev('message_deleted', 40, { seq: 1, message_id: 'm1' }), { me: ME, local: true });
    tl = mergePage(tl, [msg(1, { version: 35, body: 'stale but newer than 11' })]);
    expect(findBySeq(tl, 1)).toMatchObject({ deleted: true, body: null, version: 35 });
  });
});

describe('attachments', () => {
  const file = { attachment_id: 'a1', name: 'cat.png', size: 10, content_type: 'image/png', sha256: 'ab', image: { width: 4, height: 3 } };

  it('a live message keeps its attachments and where it was sent; a delete drops them', () => {
    let tl = applyEvent(emptyTimeline(), sent(1, 11, { attachments: [file] }), { me: ME });
    expect(tl.messages[0]!.attachments).toEqual([file]);
    expect(tl.messages[0]!.position).toBe(110);
    tl = applyEvent(tl, ev('message_deleted', 12, { seq: 1, message_id: 'm1' }), { me: ME });
    expect(tl.messages[0]!.attachments).toEqual([]);
  });

  it('one of mine confirmed by its answer carries the attachments it was sent with', () => {
    let tl = addPending(emptyTimeline(), { client_msg_id: 'c1', body: 'cat.png', reply_to: null, attachments: [file] });
    expect(tl.pending[0]!.attachments).toEqual([file]);
    tl = confirmSend(tl, {
      me: ME,
      client_msg_id: 'c1',
      body: 'cat.png',
      reply_to: null,
      attachments: tl.pending[0]!.attachments,
      answer: { message_id: 'm1', seq: 1, version: 5, position: 50 },
    });
    expect(tl.pending).toEqual([]);
    expect(tl.messages[0]!.attachments).toEqual([file]);
    expect(tl.messages[0]!.position).toBe(50);
  });
});

describe('mentions', () => {
  it('a live message keeps the server’s resolution (none when the frame has none); a newer page keeps it', () => {
    let tl = applyEvent(emptyTimeline(), sent(1, 11, { body: 'hi @me', mentions: [ME] }), { me: ME });
    tl = applyEvent(tl, sent(2, 12, { body: 'hi @me', mentions_room: true }), { me: ME });
    tl = applyEvent(tl, sent(3, 13, { body: 'hi @me' }), { me: ME });
    expect(tl.messages.map((m) => [m.mentions, m.mentions_room])).toEqual([
      [[ME], false],
      [[], true],
      [[], false],
    ]);
    // a page (no mentions in history) with a newer version of the first one
    tl = mergePage(tl, [msg(1, { body: 'hi @me (edited)', version: 20 })]);
    expect(findBySeq(tl, 1)).toMatchObject({ body: 'hi @me (edited)', mentions: [ME], mentions_room: false });
    // a message only ever seen in a page carries none: its body is read instead
    expect(findBySeq(mergePage(emptyTimeline(), [msg(5)]), 5)!.mentions).toBeUndefined();
  });
});

describe('an erased sender', () => {
  const CAROL = 'carol';
  const file = { attachment_id: 'a1', name: 'holiday.png', size: 3, content_type: 'image/png', sha256: 'x' };
  const loaded = () =>
    mergePage(emptyTimeline(), [
      msg(1, { body: 'mine, bob', attachments: [file], reactions: { '👍': [CAROL] } }),
      msg(2, { sender_id: CAROL, body: 'carol here' }),
      msg(3, { body: null, deleted: true, attachments: [] }),
    ]);

  it("turns only that user's loaded messages into \"[erased]\", keeping ids, seq, versions and reactions", () => {
    const before = loaded();
    const tl = eraseSender(before, BOB);
    expect(tl.messages.map((m) => m.body)).toEqual(['[erased]', 'carol here', null]);
    const m1 = findBySeq(tl, 1)!;
    const was = findBySeq(before, 1)!;
    expect(m1).toMatchObject({ message_id: 'm1', seq: 1, version: was.version, bodyVersion: was.bodyVersion, reactions: { '👍': [CAROL] }, deleted: false });
    expect(m1.attachments).toEqual([{ ...file, name: '[erased]' }]);
    // others' messages (and a tombstone) keep their identity
    expect(tl.messages[1]).toBe(before.messages[1]);
    expect(tl.messages[2]).toBe(before.messages[2]);
    expect(tl.erased).toEqual([BOB]);
    // idempotent
    expect(eraseSender(tl, BOB)).toBe(tl);
  });

  it('stays erased: a page or a live event still carrying their words reads "[erased]"', () => {
    let tl = eraseSender(loaded(), BOB);
    // a page read before the read models had the erasure, newer by version
    tl = mergePage(tl, [msg(1, { body: 'mine, bob', version: 30 }), msg(4, { body: 'older words' })]);
    expect(findBySeq(tl, 1)!.body).toBe('[erased]');
    expect(findBySeq(tl, 4)!.body).toBe('[erased]');
    tl = applyEvent(tl, sent(5, 40, { body: 'late', attachments: [file] }), { me: ME });
    expect(findBySeq(tl, 5)).toMatchObject({ body: '[erased]', attachments: [{ ...file, name: '[erased]' }], version: 40 });
    tl = applyEvent(tl, ev('message_edited', 41, { seq: 5, body: 'late, edited', edit_number: 1 }), { me: ME });
    expect(findBySeq(tl, 5)).toMatchObject({ body: '[erased]', version: 41 });
    // a reload (resync) starts over but remembers them
    tl = mergePage(resetConfirmed(tl), [msg(1, { body: 'mine, bob' }), msg(2, { sender_id: CAROL, body: 'carol here' })]);
    expect(tl.messages.map((m) => m.body)).toEqual(['[erased]', 'carol here']);
    // nobody else is affected
    tl = applyEvent(tl, { ...sent(6, 50, { sender_id: CAROL, body: 'still me' }) }, { me: ME });
    expect(findBySeq(tl, 6)!.body).toBe('still me');
  });
});

describe('retention', () => {
  it('an expiry removes the messages up to its seq, and an older page does not bring them back', () => {
    let tl = mergePage(emptyTimeline(), [msg(1), msg(2), msg(3), msg(4)]);
    tl = applyEvent(tl, ev('messages_expired', 30, { up_to_seq: 2 }), { me: ME });
    expect(seqs(tl)).toEqual([3, 4]);
    // A page read before the expiry reached the server's history.
    tl = mergePage(tl, [msg(1), msg(2), msg(3)]);
    expect(seqs(tl)).toEqual([3, 4]);
    // The same or an earlier expiry again changes nothing.
    const same = applyEvent(tl, ev('messages_expired', 31, { up_to_seq: 1 }), { me: ME });
    expect(same).toBe(tl);
    // Later messages still arrive.
    tl = applyEvent(tl, sent(5, 32), { me: ME });
    expect(seqs(tl)).toEqual([3, 4, 5]);
    // Nothing older is asked for: the history starts after the expired ones.
    expect(hasOlder(tl)).toBe(false);
  });

  it('a timeline that starts after expired messages asks for no older page, one that does not still does', () => {
    const tl = mergePage(emptyTimeline(), [msg(8), msg(9)]);
    expect(hasOlder(tl)).toBe(true);
    expect(hasOlder(startsAfter(tl, 6))).toBe(true);
    expect(hasOlder(startsAfter(tl, 7))).toBe(false);
    expect(startsAfter(startsAfter(tl, 7), 5).expiredUpTo).toBe(7);
  });
});
