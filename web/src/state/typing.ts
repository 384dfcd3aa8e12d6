// Typing indicators, both ways: when to tell a room that one is typing (a throttle per
// room), and who else is still shown as typing there.
//
// The throttle is mutable on purpose, like resume.ts: touched on every keystroke, never
// rendered. The shown state is immutable (it is app state).

/** While one types, at most one typing notice per room this often. */
export const TYPING_SEND_MS = 3_000;
/** Someone shows as typing this long after their last notice. */
export const TYPING_SHOW_MS = 5_000;

/** When the last typing notice went out, per room (ms since the epoch). */
export type TypingThrottle = Map<string, number>;

export function createTypingThrottle(): TypingThrottle {
  return new Map();
}

/**
 * A keystroke in `roomId` at `now`: true when a typing notice is due (recorded as sent),
 * false while the last one is younger than `every`.
 */
export function typingDue(t: TypingThrottle, roomId: string, now: number, every = TYPING_SEND_MS): boolean {
  const last = t.get(roomId);
  if (last !== undefined && now - last < every) return false;
  t.set(roomId, now);
  return true;
}

/**
 * One's message went out: the others stop showing one as typing when it arrives, so the
 * next keystroke in the room must tell them again at once.
 */
export function typingMessageSent(t: TypingThrottle, roomId: string): void {
  t.delete(roomId);
}

/** Per room, per user: until when they show as typing (ms since the epoch). */
export type TypingShown = Record<string, Record<string, number>>;

/** `userId` typed in `roomId` at `now`. */
export function typingSeen(s: TypingShown, roomId: string, userId: string, now: number): TypingShown {
  return { ...s, [roomId]: { ...s[roomId], [userId]: now + TYPING_SHOW_MS } };
}

/** `userId` is no longer typing in `roomId` (their message arrived); the same object when they were not. */
export function typingStopped(s: TypingShown, roomId: string, userId: string): TypingShown {
  const room = s[roomId];
  if (!room || !room[userId]) return s;
  const rest = { ...room };
  delete rest[userId];
  return { ...s, [roomId]: rest };
}

/**
 * Drops who stopped showing as typing by `now`. `changed`: something was dropped (else
 * `shown` is `s` itself); `left`: someone still shows, so sweep again later.
 */
export function typingExpired(s: TypingShown, now: number): { shown: TypingShown; changed: boolean; left: boolean } {
  let left = false;
  let changed = false;
  const shown: TypingShown = {};
  for (const [room, users] of Object.entries(s)) {
    const kept: Record<string, number> = {};
    for (const [u, until] of Object.entries(users)) {
      if (until > now) {
        kept[u] = until;
        left = true;
      } else changed = true;
    }
    if (Object.keys(kept).length) shown[room] = kept;
  }
  return changed ? { shown, changed, left } : { shown: s, changed, left };
}
