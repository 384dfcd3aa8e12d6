import { describe, expect, it } from 'vitest';
import { dropReceipt, mergeReceipts, moveReceipt, receiptsFrom, seenBy } from './receipts';

const msg = (seq: number, sender_id: string, deleted = false) => ({ seq, sender_id, deleted });

describe('receipts', () => {
  it('a marker never moves back; an unchanged map keeps its identity', () => {
    const r = receiptsFrom([
      { user_id: 'ua', seq: 4 },
      { user_id: 'ub', seq: 2 },
    ]);
    expect(moveReceipt(r, 'ua', 3)).toBe(r);
    expect(moveReceipt(r, 'ua', 4)).toBe(r);
    const moved = moveReceipt(r, 'ub', 5);
    expect(moved).toEqual({ ua: 4, ub: 5 });
    expect(r).toEqual({ ua: 4, ub: 2 });
    expect(moveReceipt(r, 'uc', 1)).toEqual({ ua: 4, ub: 2, uc: 1 });
  });

  it('a member who leaves is dropped', () => {
    const r = receiptsFrom([{ user_id: 'ua', seq: 4 }]);
    expect(dropReceipt(r, 'ua')).toEqual({});
    expect(dropReceipt(r, 'zz')).toBe(r);
  });

  it('a read answer merges with what moved live while it was under way', () => {
    const live = { ua: 9, ub: 3, uc: 7, ud: 2 };
    // ua: the answer is older than the live frame; ub: newer; uc moved live meanwhile and
    // is not in the (older) answer; ud is not listed and did not move: private now, or gone.
    const merged = mergeReceipts(live, [
      { user_id: 'ua', seq: 5 },
      { user_id: 'ub', seq: 6 },
    ], ['uc']);
    expect(merged).toEqual({ ua: 9, ub: 6, uc: 7 });
    expect(mergeReceipts(undefined, [{ user_id: 'ua', seq: 1 }])).toEqual({ ua: 1 });
  });
});

describe('seen by', () => {
  const tl = [msg(1, 'me'), msg(2, 'ua'), msg(3, 'me'), msg(4, 'ub'), msg(5, 'me'), msg(6, 'ua')];

  it('puts each reader under the newest of my messages they have read', () => {
    const seen = seenBy(tl, { ua: 6, ub: 4, uc: 1, ud: 0 }, 'me');
    expect(seen.get(5)).toEqual(['ua']);
    expect(seen.get(3)).toEqual(['ub']);
    expect(seen.get(1)).toEqual(['uc']);
    expect(seen.size).toBe(3);
  });

  it('lists the readers of the newest furthest first, never me', () => {
    const seen = seenBy(tl, { me: 6, ub: 5, ua: 6, uc: 5 }, 'me');
    expect([...seen.keys()]).toEqual([5]);
    expect(seen.get(5)).toEqual(['ua', 'ub', 'uc']);
  });

  it('a reader before my first loaded message, or no message of mine, shows nowhere', () => {
    expect(seenBy([msg(10, 'me')], { ua: 9 }, 'me').size).toBe(0);
    expect(seenBy([msg(1, 'ua'), msg(2, 'ub')], { ua: 2 }, 'me').size).toBe(0);
    // a deleted message of mine does not carry the line: the one before does
    expect(seenBy([msg(1, 'me'), msg(2, 'me', true)], { ua: 2 }, 'me').get(1)).toEqual(['ua']);
  });
});
