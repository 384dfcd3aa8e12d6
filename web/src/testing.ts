// Fixtures shared by the unit tests (never imported by the client itself).

import { Api, SESSION_KEY, type Session } from './api';
import { Chat } from './chat';
import type { MyRoom } from './types';
import type { RowActions } from './ui/MessageRow';

/** A joined group room as `GET /v1/rooms` lists it, with `over` applied. */
export function myRoom(id: string, over: Partial<MyRoom> = {}): MyRoom {
  return {
    room_id: id,
    kind: 'group',
    name: id,
    topic: '',
    visibility: 'public',
    owner_id: 'owner',
    member_count: 2,
    created_at: '2026-01-01T00:00:00Z',
    joined: true,
    role: 'member',
    read_seq: 0,
    unread_count: 0,
    last_seq: 0,
    last_message: null,
    other_user: null,
    version: 2,
    position: 10,
    ...over,
  };
}

/**
 * A fake `Api` for the controller's suites, signed in as `userId` ("me") by `signIn()`: the
 * session plumbing, and the reads a start makes that a suite need not look at (invites,
 * presence, receipts, who "me" is). `endpoints` adds or replaces the rest, recording into
 * `calls` what a test checks.
 */
export function fakeApi(userId: string, endpoints: (calls: string[]) => Record<string, unknown>) {
  let current: Session | null = null;
  let listener: ((s: Session | null) => void) | null = null;
  const calls: string[] = [];
  const api = {
    get current() {
      return current;
    },
    minPosition: 0,
    onSession(cb: (s: Session | null) => void) {
      listener = cb;
      return () => undefined;
    },
    accessToken: async () => 'token',
    invites: async () => [],
    presence: async () => [],
    receipts: async () => [],
    me: async () => ({ id: userId, username: 'me', display_name: 'Me', private_receipts: false }),
    ...endpoints(calls),
  };
  return {
    api: api as unknown as Api,
    calls,
    signIn() {
      current = { userId, accessToken: 'token', refreshToken: 'r', expiresAt: Date.now() + 600_000, username: 'me', displayName: 'Me' };
      listener?.(current);
    },
  };
}

export type FakeApi = ReturnType<typeof fakeApi>;

/** A controller over `fake`, signed in, its socket open and subscribed to each of `rooms`. */
export async function startedChat(fake: FakeApi, rooms: MyRoom[]): Promise<{ chat: Chat; ws: FakeWs }> {
  const chat = new Chat(fake.api);
  fake.signIn();
  await settle();
  const ws = FakeWs.last!;
  ws.open();
  for (const r of rooms) ws.frame({ type: 'subscribed', room_id: r.room_id, version: r.version, epoch: 1 });
  return { chat, ws };
}

/** localStorage in memory. */
export class MemStorage implements Storage {
  private m = new Map<string, string>();
  get length() {
    return this.m.size;
  }
  clear() {
    this.m.clear();
  }
  getItem(k: string) {
    return this.m.has(k) ? this.m.get(k)! : null;
  }
  key(i: number) {
    return [...this.m.keys()][i] ?? null;
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
}

/** A JSON answer (`null`: no body). */
export function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(body === null ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** Row actions that do nothing. */
export const noActions: RowActions = {
  edit: async () => undefined,
  startEdit: () => undefined,
  remove: () => undefined,
  react: () => undefined,
  reply: () => undefined,
  retry: () => undefined,
  discard: () => undefined,
  jumpTo: () => undefined,
  requestQuote: () => undefined,
};

/** A request the fake server of `fakeServerChat` was sent. */
export interface Sent {
  method: string;
  url: string;
  body: unknown;
  auth: string | undefined;
}

/**
 * A controller on a real Api whose server is `answer` (a Response as it is, anything else
 * as a 200 JSON body), signed in as `session` (none: signed out). Nothing is started.
 */
export function fakeServerChat(answer: (req: Sent) => unknown, session: Session | null = null) {
  const storage = new MemStorage();
  if (session) storage.setItem(SESSION_KEY, JSON.stringify(session));
  const sent: Sent[] = [];
  const fetchFn = (async (url: string, init: RequestInit) => {
    const headers = init.headers as Record<string, string>;
    const body = init.body instanceof Blob ? init.body : init.body ? JSON.parse(String(init.body)) : undefined;
    const req: Sent = { method: init.method ?? 'GET', url, body, auth: headers.authorization };
    sent.push(req);
    const a = answer(req);
    return a instanceof Response ? a : json(200, a);
  }) as unknown as typeof fetch;
  const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null });
  return { chat: new Chat(api), api, sent, storage };
}

/** A WebSocket the test drives: `open()`, `frame(...)`; what the client sent is in `sent`. */
export class FakeWs {
  static last: FakeWs | null = null;
  readyState = 0;
  sent: unknown[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  constructor(readonly url: string) {
    FakeWs.last = this;
  }
  send(d: string) {
    this.sent.push(JSON.parse(d));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  frame(f: Record<string, unknown>) {
    this.onmessage?.(new MessageEvent('message', { data: JSON.stringify(f) }));
  }
  /** The connection drops (the client reconnects with back-off). */
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
}

/** Lets the promise chains a frame or an answer started run to their end (a few turns of the
 * event loop; nothing waits on a clock). */
export const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};
