// The REST client: JSON in and out, typed errors, the session (access + refresh tokens
// in localStorage), refresh before expiry and on `401 token_expired`, single-flight across
// tabs (a refresh token is spent on use and re-using a spent one revokes its family),
// and read-your-writes (`min_position` after one's own commands).

import type {
  Attachment,
  AvatarAnswer,
  CommandAnswer,
  Erasure,
  Invite,
  Me,
  Member,
  MentionPage,
  Message,
  MessagePage,
  MyRoom,
  MySession,
  ServerInfo,
  NotificationLevel,
  NotificationLevelAnswer,
  RetentionAnswer,
  PasswordChanged,
  Presence,
  ProfileAnswer,
  PublicRoom,
  ReadReceiptsAnswer,
  Receipt,
  SearchResults,
  SendAnswer,
  SsoInfo,
  TokenResponse,
  UserSummary,
} from './types';

/** An answer in the platform's error shape (`{"error":{"code","message"}}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfter: number | null;
  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The request never got an answer (offline, connection reset). */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

/** The session ended (refresh token refused, or logged out in another tab). */
export class SessionEnded extends Error {
  constructor() {
    super('session ended');
    this.name = 'SessionEnded';
  }
}

export function isRetryable(e: unknown): boolean {
  if (e instanceof NetworkError) return true;
  if (e instanceof ApiError) return e.status >= 500 || e.status === 429 || e.code === 'not_caught_up';
  return false;
}

/** What to show for a failure: an API error by its code in `messages`, else its own text. */
export function errorText(e: unknown, messages: Record<string, string> = {}): string {
  if (e instanceof ApiError) return messages[e.code] ?? (e.message || e.code);
  if (e instanceof NetworkError) return 'Network error: check your connection.';
  if (e instanceof Error) return e.message;
  return String(e);
}

export interface Session {
  userId: string;
  accessToken: string;
  refreshToken: string;
  /** When the access token expires (ms since the epoch). */
  expiresAt: number;
  /** Its lifetime (ms), to refresh a fair while before the end whatever the lifetime. */
  ttlMs?: number;
  /** Who signed in, as typed at login or registration (shown at once, no read needed). */
  username?: string;
  /** Known after a registration (the name given, or the username by default). */
  displayName?: string;
}

export const SESSION_KEY = 'chat.session';

interface LockManagerLike {
  request(name: string, cb: () => Promise<unknown>): Promise<unknown>;
}

export interface ApiOptions {
  base?: string;
  storage?: Storage;
  locks?: LockManagerLike | null;
  /** Where the session is shared consistently across tabs (IndexedDB by default). */
  kv?: SharedKV | null;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface Answer<T> {
  data: T;
  status: number;
  /** The `Chat-Epoch` of a read. */
  epoch: number | null;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as the body as it is (an upload), instead of `body` as JSON. */
  raw?: Blob;
  query?: Record<string, string | number | undefined | null>;
  /** Read-your-writes: at least this log position (the API's own is added). */
  minPosition?: number;
  auth?: boolean;
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/** Refresh this long before the access token expires (a fifth of short lifetimes). */
export function refreshMargin(s: Session): number {
  return Math.min(60_000, (s.ttlMs ?? 900_000) / 5);
}

function parseSession(raw: string | null): Session | null {
  if (!raw) return null;
  try {
    const s = JSON.parse(raw) as Session;
    if (s && typeof s.accessToken === 'string' && typeof s.refreshToken === 'string' && typeof s.userId === 'string') return s;
  } catch {
    /* ignore */
  }
  return null;
}

/** Single sign-on ends at `/#sso&user_id=…&access_token=…&refresh_token=…&expires_in=…`. */
export function isSsoFragment(hash: string): boolean {
  return hash === '#sso' || hash.startsWith('#sso&');
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOKEN_RE = /^[\w.~+/=-]+$/;

/** The tokens of a single sign-on fragment; null unless it is one, whole and well formed. */
export function ssoTokens(hash: string): TokenResponse | null {
  if (!hash.startsWith('#sso&')) return null;
  const p = new URLSearchParams(hash.slice(5));
  const one = (k: string) => (p.getAll(k).length === 1 ? p.get(k)! : '');
  const [userId, access, refresh, expires] = ['user_id', 'access_token', 'refresh_token', 'expires_in'].map(one) as [string, string, string, string];
  if (!UUID_RE.test(userId) || !TOKEN_RE.test(access) || !TOKEN_RE.test(refresh) || !/^[1-9]\d{0,8}$/.test(expires)) return null;
  return { user_id: userId, access_token: access, refresh_token: refresh, expires_in: Number(expires), token_type: 'Bearer' };
}

/**
 * Back from single sign-on (the callback sends the browser to `/` with the tokens in the URL
 * fragment, which never reaches a server): the fragment leaves the address bar and the
 * history at once, and its tokens become the session, as a password login's would. A fragment
 * that is not whole is dropped without a session; any other (a room's route) is left alone.
 * True when it signed in.
 */
export function takeSsoFragment(
  api: Pick<Api, 'signInWithTokens'>,
  loc: Pick<Location, 'hash' | 'pathname' | 'search'> = location,
  hist: Pick<History, 'replaceState' | 'state'> = history,
): boolean {
  const hash = loc.hash;
  if (!isSsoFragment(hash)) return false;
  hist.replaceState(hist.state, '', loc.pathname + loc.search);
  const t = ssoTokens(hash);
  if (!t) return false;
  api.signInWithTokens(t);
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long a tab keeps the refresh lock after rotating (see `refresh`). */
const LOCK_GRACE_MS = 150;

/** A small key-value store shared by every tab of the origin. */
export interface SharedKV {
  get(key: string): Promise<string | null>;
  set(key: string, value: string | null): Promise<void>;
}

/** IndexedDB as a SharedKV; null where there is none. */
export function indexedDbKV(): SharedKV | null {
  if (typeof indexedDB === 'undefined') return null;
  let db: Promise<IDBDatabase> | null = null;
  const open = () =>
    (db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open('chat', 1);
      req.onupgradeneeded = () => req.result.createObjectStore('kv');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    }));
  const tx = async <T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const d = await open();
    return new Promise<T>((resolve, reject) => {
      const t = d.transaction('kv', mode);
      const req = f(t.objectStore('kv'));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  };
  return {
    get: async (key) => ((await tx('readonly', (s) => s.get(key))) as string | undefined) ?? null,
    set: async (key, value) => {
      await tx<unknown>('readwrite', (s) => (value === null ? s.delete(key) : s.put(value, key)) as IDBRequest<unknown>);
    },
  };
}

export class Api {
  private readonly base: string;
  private readonly storage: Storage | null;
  private readonly locks: LockManagerLike | null;
  private readonly kv: SharedKV | null;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private session: Session | null;
  private refreshing: Promise<Session> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly listeners = new Set<(s: Session | null) => void>();
  /** The highest log position of this client's own commands. */
  minPosition = 0;

  constructor(opts: ApiOptions = {}) {
    this.base = opts.base ?? '';
    this.storage = opts.storage ?? (typeof localStorage !== 'undefined' ? localStorage : null);
    const nav = typeof navigator !== 'undefined' ? (navigator as Navigator & { locks?: LockManagerLike }) : null;
    this.locks = opts.locks !== undefined ? opts.locks : (nav?.locks ?? null);
    this.kv = opts.kv !== undefined ? opts.kv : indexedDbKV();
    this.fetchFn = opts.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
    this.now = opts.now ?? (() => Date.now());
    this.session = parseSession(this.storage?.getItem(SESSION_KEY) ?? null);
    this.schedule();
  }

  get current(): Session | null {
    return this.session;
  }

  onSession(cb: (s: Session | null) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private setSession(s: Session | null, persist = true): void {
    this.session = s;
    if (persist && this.storage) {
      if (s) this.storage.setItem(SESSION_KEY, JSON.stringify(s));
      else this.storage.removeItem(SESSION_KEY);
      this.kv?.set(SESSION_KEY, s ? JSON.stringify(s) : null).catch(() => undefined);
    }
    this.schedule();
    for (const l of this.listeners) l(s);
  }

  /** Another tab changed the stored session (a `storage` event). */
  adoptStored(): void {
    const stored = parseSession(this.storage?.getItem(SESSION_KEY) ?? null);
    if (!stored) {
      if (this.session) this.setSession(null, false);
      return;
    }
    if (this.session && stored.refreshToken === this.session.refreshToken && stored.accessToken === this.session.accessToken) return;
    this.setSession(stored, false);
  }

  private schedule(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const s = this.session;
    if (!s) return;
    const due = Math.max(1_000, s.expiresAt - refreshMargin(s) - this.now());
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch(() => {
        /* reported through onSession / the next request */
      });
    }, Math.min(due, 2_147_000_000));
  }

  private fromTokens(t: TokenResponse, who?: { username?: string; displayName?: string }): Session {
    return {
      ...who,
      userId: t.user_id,
      accessToken: t.access_token,
      refreshToken: t.refresh_token,
      expiresAt: this.now() + t.expires_in * 1000,
      ttlMs: t.expires_in * 1000,
    };
  }

  async login(username: string, password: string): Promise<Session> {
    const { data } = await this.request<TokenResponse>('POST', '/v1/auth/login', { body: { username, password }, auth: false });
    const s = this.fromTokens(data, { username });
    this.setSession(s);
    return s;
  }

  async register(username: string, password: string, displayName?: string): Promise<Session> {
    const body: Record<string, string> = { username, password };
    if (displayName) body.display_name = displayName;
    const { data } = await this.request<TokenResponse>('POST', '/v1/auth/register', { body, auth: false });
    const s = this.fromTokens(data, { username, displayName: displayName || username });
    this.setSession(s);
    return s;
  }

  /** Signs in with tokens got otherwise than by a password (single sign-on, `takeSsoFragment`). */
  signInWithTokens(t: TokenResponse): Session {
    const s = this.fromTokens(t);
    this.setSession(s);
    return s;
  }

  /**
   * Notes who is signed in with the session (shown at once on the next load): merged into the
   * session as all tabs share it, under the refresh lock, so that tokens another tab rotated
   * meanwhile are kept, never overwritten with spent ones.
   */
  async noteUser(who: { username?: string; displayName?: string }): Promise<void> {
    const userId = this.session?.userId;
    const run = async (): Promise<void> => {
      const stored = await this.readShared();
      if (!stored || stored.userId !== userId) return;
      const next = { ...stored, ...who };
      if (next.username === stored.username && next.displayName === stored.displayName) return;
      this.setSession(next);
      await this.kv?.set(SESSION_KEY, JSON.stringify(next)).catch(() => undefined);
    };
    if (!userId) return;
    await (this.locks ? this.locks.request('chat-refresh', run) : run());
  }

  /**
   * Ends the session: the server revokes the refresh token's family (best effort: an
   * older server without the route, or no network, still signs out here).
   */
  logout(): void {
    const s = this.session;
    this.endLocally();
    if (s) {
      this.request('POST', '/v1/auth/logout', { body: { refresh_token: s.refreshToken }, auth: false }).catch(() => undefined);
    }
  }

  /**
   * Ends the session in this browser only, as `logout` does, without asking the server: for
   * when the server ended it already (an erasure), where its tokens are refused.
   */
  endLocally(): void {
    this.minPosition = 0;
    this.setSession(null);
  }

  /**
   * Rotates the refresh token once, whatever the number of callers in this tab and in
   * other tabs: under the `chat-refresh` lock, the stored session is re-read first and
   * used as is when another tab rotated it already.
   */
  refresh(): Promise<Session> {
    if (this.refreshing) return this.refreshing;
    const spent = this.session?.refreshToken;
    const run = async (): Promise<Session> => {
      const stored = await this.readShared();
      if (!stored) {
        if (this.session) this.setSession(null, false);
        throw new SessionEnded();
      }
      if (stored.refreshToken !== spent && stored.expiresAt - this.now() > refreshMargin(stored) / 2) {
        // Another tab rotated it already: use its tokens.
        this.setSession(stored, false);
        return stored;
      }
      let data: TokenResponse;
      try {
        ({ data } = await this.request<TokenResponse>('POST', '/v1/auth/refresh', {
          body: { refresh_token: stored.refreshToken },
          auth: false,
        }));
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          this.setSession(null);
          throw new SessionEnded();
        }
        throw e;
      }
      const next = this.fromTokens(data, { username: stored.username, displayName: stored.displayName });
      this.setSession(next);
      // Before the lock is released: the rotation is committed where every tab reads
      // consistently (IndexedDB), and other processes' localStorage caches get a moment
      // to hear of it.
      await this.kv?.set(SESSION_KEY, JSON.stringify(next)).catch(() => undefined);
      if (this.locks) await sleep(LOCK_GRACE_MS);
      return next;
    };
    const locked: Promise<Session> = this.locks
      ? (this.locks.request('chat-refresh', run) as Promise<Session>)
      : run();
    this.refreshing = locked.finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /**
   * The session as all tabs share it, read under the lock: the freshest of IndexedDB
   * (consistent across processes) and localStorage (whose copy in this process may lag
   * another tab's write by a moment). null when signed out.
   */
  private async readShared(): Promise<Session | null> {
    if (!this.storage) return this.session;
    const local = parseSession(this.storage.getItem(SESSION_KEY));
    if (!local) return null;
    let shared: Session | null = null;
    try {
      shared = parseSession((await this.kv?.get(SESSION_KEY)) ?? null);
    } catch {
      shared = null;
    }
    if (shared && shared.userId === local.userId && shared.expiresAt > local.expiresAt) return shared;
    return local;
  }

  /** An access token good for at least a little while (refreshing it first if needed). */
  async accessToken(): Promise<string> {
    const s = this.session;
    if (!s) throw new SessionEnded();
    if (s.expiresAt - this.now() < refreshMargin(s) / 4) return (await this.refresh()).accessToken;
    return s.accessToken;
  }

  /** Records the position of one's own command for the reads that follow. */
  notePosition(p: number | null | undefined): void {
    if (typeof p === 'number' && p > this.minPosition) this.minPosition = p;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
    const auth = opts.auth !== false;
    let url = this.base + path;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    if (method === 'GET' && auth) {
      const min = Math.max(this.minPosition, opts.minPosition ?? 0);
      if (min > 0) params.set('min_position', String(min));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;

    let refreshed = false;
    let caughtUpRetries = 0;
    for (;;) {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (opts.raw !== undefined) headers['content-type'] = opts.raw.type || 'application/octet-stream';
      else if (opts.body !== undefined) headers['content-type'] = 'application/json';
      if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
      if (auth) headers.authorization = `Bearer ${await this.accessToken()}`;
      let res: Response;
      try {
        res = await this.fetchFn(url, {
          method,
          headers,
          body: opts.raw ?? (opts.body !== undefined ? JSON.stringify(opts.body) : undefined),
          signal: opts.signal,
        });
      } catch (e) {
        if ((e as Error)?.name === 'AbortError') throw e;
        throw new NetworkError((e as Error)?.message ?? 'network error');
      }
      const epochHeader = res.headers.get('chat-epoch');
      const epoch = epochHeader !== null && epochHeader !== '' ? Number(epochHeader) : null;
      const text = await res.text().catch(() => '');
      let json: unknown = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
      }
      if (res.ok) {
        const pos = (json as { position?: number | null } | null)?.position;
        if (method !== 'GET' && auth) this.notePosition(pos);
        return { data: json as T, status: res.status, epoch };
      }
      const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
      const retryAfterHeader = res.headers.get('retry-after');
      const e = new ApiError(
        res.status,
        err?.code ?? `http_${res.status}`,
        err?.message ?? res.statusText ?? 'request failed',
        retryAfterHeader ? Number(retryAfterHeader) : null,
      );
      if (auth && res.status === 401 && !refreshed && (e.code === 'token_expired' || e.code === 'invalid_token')) {
        refreshed = true;
        await this.refresh();
        continue;
      }
      if (e.code === 'not_caught_up' && caughtUpRetries < 3) {
        caughtUpRetries++;
        await sleep(Math.min(5, e.retryAfter ?? 1) * 1000);
        continue;
      }
      throw e;
    }
  }

  // ---- typed endpoints ----

  me() {
    return this.request<Me>('GET', '/v1/me').then((a) => a.data);
  }
  /** The server's default retention period and its limits (`GET /v1/server`). */
  server() {
    return this.request<ServerInfo>('GET', '/v1/server').then((a) => a.data);
  }
  userByName(username: string) {
    return this.request<UserSummary>('GET', '/v1/users', { query: { username } }).then((a) => a.data);
  }
  rooms(minPosition?: number) {
    return this.request<{ rooms: MyRoom[] }>('GET', '/v1/rooms', { minPosition });
  }
  room(roomId: string, minPosition?: number) {
    return this.request<MyRoom>('GET', `/v1/rooms/${enc(roomId)}`, { minPosition });
  }
  publicRooms(q: string, signal?: AbortSignal) {
    return this.request<{ rooms: PublicRoom[] }>('GET', '/v1/rooms/public', { query: { q, limit: 50 }, signal }).then(
      (a) => a.data.rooms,
    );
  }
  /** The caller's pending invitations; null when the server has no such route (older server). */
  async invites(): Promise<Invite[] | null> {
    try {
      return (await this.request<{ invites: Invite[] }>('GET', '/v1/invites')).data.invites;
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'not_found' || e.status === 405)) return null;
      throw e;
    }
  }
  members(roomId: string, minPosition?: number) {
    return this.request<{ members: Member[] }>('GET', `/v1/rooms/${enc(roomId)}/members`, { minPosition }).then(
      (a) => a.data.members,
    );
  }
  messages(roomId: string, q: { before_seq?: number; after_seq?: number; limit?: number }, minPosition?: number) {
    return this.request<MessagePage>('GET', `/v1/rooms/${enc(roomId)}/messages`, { query: { ...q }, minPosition });
  }
  /** One message; null when the server does not have this route or the message is gone. */
  async message(roomId: string, messageId: string): Promise<Message | null> {
    try {
      return (await this.request<Message>('GET', `/v1/rooms/${enc(roomId)}/messages/${enc(messageId)}`)).data;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  }
  presence(userIds: string[]) {
    return this.request<{ presence: Presence[] }>('GET', '/v1/presence', { query: { user_id: userIds.join(',') } }).then(
      (a) => a.data.presence,
    );
  }
  search(q: { q: string; room_id?: string; sort?: string; cursor?: string | null; limit?: number }) {
    return this.request<SearchResults>('GET', '/v1/search/messages', { query: { ...q } }).then((a) => a.data);
  }
  /** The caller's mentions across their rooms, newest first; `before`: the previous page's `next_before`. */
  mentions(q: { before?: number | null; limit?: number } = {}) {
    return this.request<MentionPage>('GET', '/v1/mentions', { query: { before: q.before, limit: q.limit } }).then((a) => a.data);
  }
  /** How far the room's members have read (members keeping receipts private are not listed). */
  receipts(roomId: string, minPosition?: number) {
    return this.request<{ receipts: Receipt[] }>('GET', `/v1/rooms/${enc(roomId)}/receipts`, { minPosition }).then(
      (a) => a.data.receipts,
    );
  }

  createRoom(body: { name: string; topic?: string; visibility: string }, key: string) {
    return this.command<{ room_id: string }>('POST', '/v1/rooms', body, key);
  }
  join(roomId: string) {
    return this.command<{ room_id: string }>('POST', `/v1/rooms/${enc(roomId)}/join`, undefined, newKey());
  }
  leave(roomId: string) {
    return this.command<{ room_id: string }>('POST', `/v1/rooms/${enc(roomId)}/leave`, undefined, newKey());
  }
  invite(roomId: string, userId: string) {
    return this.command('POST', `/v1/rooms/${enc(roomId)}/invites`, { user_id: userId }, newKey());
  }
  /** Makes a member of a group room an admin, or an admin a member again (the owner only). */
  changeRole(roomId: string, userId: string, role: 'admin' | 'member') {
    return this.command('PUT', `/v1/rooms/${enc(roomId)}/members/${enc(userId)}/role`, { role }, newKey());
  }
  kick(roomId: string, userId: string) {
    return this.command('DELETE', `/v1/rooms/${enc(roomId)}/members/${enc(userId)}`, undefined, newKey());
  }
  direct(userId: string) {
    return this.command<{ room_id: string }>('POST', '/v1/direct', { user_id: userId });
  }
  send(roomId: string, body: { client_msg_id: string; body: string; reply_to?: string | null; attachments?: string[] }) {
    const b: Record<string, unknown> = { client_msg_id: body.client_msg_id, body: body.body };
    if (body.reply_to) b.reply_to = body.reply_to;
    if (body.attachments?.length) b.attachments = body.attachments;
    return this.request<SendAnswer>('POST', `/v1/rooms/${enc(roomId)}/messages`, { body: b }).then((a) => a.data);
  }
  /** Uploads a file to a room; send it with a message by its `attachment_id`. */
  upload(roomId: string, file: Blob, name: string) {
    return this.request<Attachment>('POST', `/v1/rooms/${enc(roomId)}/attachments`, { raw: file, query: { name } }).then(
      (a) => a.data,
    );
  }
  /**
   * An attachment's bytes (or its thumbnail's), with the session's token, once the read models
   * have the message that carries it (`minPosition`: where it was sent, when known).
   */
  async attachment(attachmentId: string, thumbnail = false, minPosition = 0): Promise<Blob> {
    const min = Math.max(this.minPosition, minPosition);
    const path = `/v1/attachments/${enc(attachmentId)}${thumbnail ? '/thumbnail' : ''}${min > 0 ? `?min_position=${min}` : ''}`;
    return this.blob(path);
  }

  /**
   * Bytes the API serves (a file, a picture) with the session's token, refreshed once; read
   * once the read models reach `minPosition` (`X-Min-Position`), when given.
   */
  private async blob(path: string, minPosition = 0): Promise<Blob> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${await this.accessToken()}` };
        if (minPosition > 0) headers['x-min-position'] = String(minPosition);
        res = await this.fetchFn(this.base + path, { headers });
      } catch (e) {
        throw new NetworkError((e as Error)?.message ?? 'network error');
      }
      if (res.ok) return res.blob();
      const err = ((await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null)?.error;
      if (res.status === 401 && attempt === 0) {
        await this.refresh();
        continue;
      }
      throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? res.statusText, null);
    }
  }
  edit(roomId: string, messageId: string, body: string) {
    return this.command<{ edit_number: number }>('PATCH', `/v1/rooms/${enc(roomId)}/messages/${enc(messageId)}`, { body }, newKey());
  }
  deleteMessage(roomId: string, messageId: string) {
    return this.command('DELETE', `/v1/rooms/${enc(roomId)}/messages/${enc(messageId)}`, undefined, newKey());
  }
  react(roomId: string, messageId: string, emoji: string, on: boolean) {
    return this.command(on ? 'PUT' : 'DELETE', `/v1/rooms/${enc(roomId)}/messages/${enc(messageId)}/reactions/${enc(emoji)}`);
  }
  markRead(roomId: string, seq: number) {
    return this.command<{ seq: number }>('POST', `/v1/rooms/${enc(roomId)}/read`, { seq });
  }
  /** The caller's notification level in a room. */
  setNotificationLevel(roomId: string, level: NotificationLevel) {
    return this.request<NotificationLevelAnswer>('PUT', `/v1/rooms/${enc(roomId)}/notifications`, { body: { level } }).then(
      (a) => a.data,
    );
  }
  /** How long a room keeps its messages (`null`: the server's default); owners and admins. */
  setRetention(roomId: string, days: number | null) {
    return this.request<RetentionAnswer>('PUT', `/v1/rooms/${enc(roomId)}/retention`, { body: { days } }).then((a) => a.data);
  }
  /** Keeps the caller's read receipts private (`true`), or shows them again. */
  setPrivateReceipts(priv: boolean) {
    return this.request<ReadReceiptsAnswer>('PUT', '/v1/me/read-receipts', { body: { private: priv } }).then((a) => a.data);
  }
  /** Changes the name others see (`''`: the username again). */
  setDisplayName(displayName: string) {
    return this.request<ProfileAnswer>('PATCH', '/v1/me/profile', { body: { display_name: displayName } }).then((a) => a.data);
  }
  /** Sets the caller's avatar to the image `file` (PNG, JPEG, WebP or GIF, at most 2 MiB). */
  setAvatar(file: Blob) {
    return this.request<AvatarAnswer>('PUT', '/v1/me/avatar', { raw: file }).then((a) => a.data);
  }
  /** Removes the caller's avatar. */
  removeAvatar() {
    return this.request<AvatarAnswer>('DELETE', '/v1/me/avatar').then((a) => a.data);
  }
  /**
   * A user's avatar, with the session's token: `url` as the reads give it
   * (`/v1/users/{id}/avatar?v=…`), once the read models have it: after one's own commands (a
   * picture just chosen), and at or after `minPosition` (where the URL was learned, when known:
   * a live frame's position, which can come before the read models have it). Answers with a
   * long cache lifetime, so the browser's cache serves the same picture again.
   */
  async avatar(url: string, minPosition = 0): Promise<Blob> {
    if (!url.startsWith('/v1/users/')) throw new ApiError(400, 'invalid_avatar_url', 'not an avatar URL', null);
    // A header, not `min_position`: the URL, the browser cache's key, stays the picture's own.
    return this.blob(url, Math.max(this.minPosition, minPosition));
  }
  /** The caller's open sessions, one per sign-in (`current`: this one). */
  sessions() {
    return this.request<{ sessions: MySession[] }>('GET', '/v1/me/sessions').then((a) => a.data.sessions);
  }
  /** Signs one of the caller's sessions out (`404 session_not_found` when it ended already). */
  endSession(sessionId: string) {
    return this.request<null>('DELETE', `/v1/me/sessions/${enc(sessionId)}`).then(() => undefined);
  }
  /** Changes the password; every other session is signed out (this one stays). */
  changePassword(currentPassword: string, newPassword: string) {
    return this.request<PasswordChanged>('POST', '/v1/me/password', {
      body: { current_password: currentPassword, new_password: newPassword },
    }).then((a) => a.data);
  }
  /**
   * Erases the caller's account, for good (`confirmUsername`: their own username, typed again;
   * `422 confirmation_mismatch` when it is not). Every session of theirs is ended by the server,
   * this one included: sign out here with `endLocally`.
   */
  eraseMe(confirmUsername: string) {
    return this.request<Erasure>('POST', '/v1/me/erase', { body: { confirm_username: confirmUsername } }).then((a) => a.data);
  }
  /** Whether single sign-on is offered, and the provider's name (`GET /v1/auth/oidc`). */
  ssoInfo() {
    return this.request<SsoInfo>('GET', '/v1/auth/oidc', { auth: false }).then((a) => a.data);
  }
  /** Where the single sign-on button takes the browser (a page navigation, not a request). */
  ssoStartUrl(): string {
    return `${this.base}/v1/auth/oidc/start`;
  }
  ephemeral(roomId: string, body: string) {
    return this.request<null>('POST', `/v1/rooms/${enc(roomId)}/ephemeral`, { body: { body } }).then(() => undefined);
  }

  private command<T = Record<string, never>>(method: string, path: string, body?: unknown, key?: string) {
    return this.request<CommandAnswer & T>(method, path, { body, idempotencyKey: key }).then((a) => a.data);
  }
}

export function enc(s: string): string {
  return encodeURIComponent(s);
}

export function newKey(): string {
  return uuid();
}

/** A random UUID (crypto.randomUUID where available, e.g. on http://127.0.0.1 too). */
export function uuid(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c?.randomUUID) return c.randomUUID();
  const b = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
