import { describe, expect, it } from 'vitest';
import {
  Api,
  ApiError,
  errorText,
  isSsoFragment,
  NetworkError,
  SESSION_KEY,
  SessionEnded,
  ssoTokens,
  takeSsoFragment,
  type Session,
} from './api';
import { routeRoom } from './chat';
import { json, MemStorage } from './testing';

/** A lock manager that runs callbacks one at a time, like navigator.locks. */
function fakeLocks() {
  let chain: Promise<unknown> = Promise.resolve();
  let taken = 0;
  return {
    get taken() {
      return taken;
    },
    request(_name: string, cb: () => Promise<unknown>) {
      taken++;
      const run = chain.then(cb, cb);
      chain = run.catch(() => undefined);
      return run;
    },
  };
}

const NOW = 1_000_000_000_000;

function session(over: Partial<Session> = {}): Session {
  return { userId: 'u1', accessToken: 'a1', refreshToken: 'r1', expiresAt: NOW + 600_000, ...over };
}

function tokens(n: number) {
  return { user_id: 'u1', access_token: `a${n}`, refresh_token: `r${n}`, expires_in: 900, token_type: 'Bearer' };
}

describe('Api', () => {
  it('refreshes once for many requests that meet token_expired, then retries them', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const calls: string[] = [];
    let refreshes = 0;
    const fetchFn = (async (url: string, init: RequestInit) => {
      const auth = (init.headers as Record<string, string>).authorization;
      calls.push(`${init.method} ${url} ${auth ?? ''}`);
      if (url === '/v1/auth/refresh') {
        refreshes++;
        expect(JSON.parse(String(init.body))).toEqual({ refresh_token: 'r1' });
        await new Promise((r) => setTimeout(r, 5));
        return json(200, tokens(2));
      }
      if (auth === 'Bearer a1') return json(401, { error: { code: 'token_expired', message: 'expired' } });
      return json(200, { ok: true }, { 'chat-epoch': '3' });
    }) as unknown as typeof fetch;
    const locks = fakeLocks();
    const api = new Api({ storage, fetch: fetchFn, locks, kv: null, now: () => NOW });
    const answers = await Promise.all([api.request('GET', '/v1/a'), api.request('GET', '/v1/b'), api.request('GET', '/v1/c')]);
    expect(refreshes).toBe(1);
    expect(answers.map((a) => a.epoch)).toEqual([3, 3, 3]);
    expect(api.current?.accessToken).toBe('a2');
    expect(JSON.parse(storage.getItem(SESSION_KEY)!).refreshToken).toBe('r2');
    expect(locks.taken).toBe(1);
  });

  it('uses the tokens another tab stored instead of spending its refresh token again', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    let refreshes = 0;
    const fetchFn = (async (url: string) => {
      if (url === '/v1/auth/refresh') refreshes++;
      return json(200, tokens(9));
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: fakeLocks(), kv: null, now: () => NOW });
    // another tab rotated meanwhile
    storage.setItem(SESSION_KEY, JSON.stringify(session({ accessToken: 'a5', refreshToken: 'r5' })));
    const s = await api.refresh();
    expect(refreshes).toBe(0);
    expect(s.refreshToken).toBe('r5');
    expect(api.current?.accessToken).toBe('a5');
  });

  it('trusts the shared store when this process’s localStorage has not caught up yet', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const kvData = new Map<string, string>();
    const kv = { get: async (k: string) => kvData.get(k) ?? null, set: async (k: string, v: string | null) => void (v === null ? kvData.delete(k) : kvData.set(k, v)) };
    let refreshes = 0;
    const fetchFn = (async () => {
      refreshes++;
      return json(200, tokens(9));
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: fakeLocks(), kv, now: () => NOW });
    // another tab rotated: IndexedDB has it, this process's localStorage copy does not yet
    kvData.set(SESSION_KEY, JSON.stringify(session({ accessToken: 'a7', refreshToken: 'r7', expiresAt: NOW + 900_000 })));
    const s = await api.refresh();
    expect(refreshes).toBe(0);
    expect(s.refreshToken).toBe('r7');
    // and a rotation of its own is written there before the lock is released
    kvData.clear();
    storage.setItem(SESSION_KEY, JSON.stringify(session({ refreshToken: 'r7', accessToken: 'a7' })));
    const api2 = new Api({ storage, fetch: fetchFn, locks: null, kv, now: () => NOW });
    await api2.refresh();
    expect(JSON.parse(kvData.get(SESSION_KEY)!).refreshToken).toBe('r9');
  });

  it('a refused refresh ends the session', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const fetchFn = (async () => json(401, { error: { code: 'invalid_refresh_token', message: 'no' } })) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    const seen: (Session | null)[] = [];
    api.onSession((s) => seen.push(s));
    await expect(api.refresh()).rejects.toBeInstanceOf(SessionEnded);
    expect(api.current).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
    expect(seen).toEqual([null]);
  });

  it('refreshes first when the access token is about to expire', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session({ expiresAt: NOW + 5_000 })));
    const calls: string[] = [];
    const fetchFn = (async (url: string, init: RequestInit) => {
      calls.push(`${url} ${(init.headers as Record<string, string>).authorization ?? '-'}`);
      return url === '/v1/auth/refresh' ? json(200, tokens(2)) : json(200, {});
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    await api.request('GET', '/v1/me');
    expect(calls).toEqual(['/v1/auth/refresh -', '/v1/me Bearer a2']);
  });

  it('turns error answers into typed errors and failures into NetworkError', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    let fail = false;
    const fetchFn = (async () => {
      if (fail) throw new TypeError('Failed to fetch');
      return json(409, { error: { code: 'username_taken', message: 'taken' } });
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    const e = await api.request('POST', '/v1/x', { body: {} }).catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 409, code: 'username_taken', message: 'taken' });
    fail = true;
    await expect(api.request('GET', '/v1/x')).rejects.toBeInstanceOf(NetworkError);
  });

  it('reads after a command pass its position as min_position', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const urls: string[] = [];
    const fetchFn = (async (url: string) => {
      urls.push(url);
      return url.startsWith('/v1/rooms/r/messages') && !url.includes('?')
        ? json(201, { message_id: 'm', seq: 1, version: 3, position: 42 })
        : json(200, { messages: [] });
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    await api.messages('r', { limit: 5 });
    await api.send('r', { client_msg_id: 'c', body: 'hi' });
    await api.messages('r', { limit: 5 });
    await api.messages('r', { before_seq: 9 }, 50);
    expect(urls).toEqual([
      '/v1/rooms/r/messages?limit=5',
      '/v1/rooms/r/messages',
      '/v1/rooms/r/messages?limit=5&min_position=42',
      '/v1/rooms/r/messages?before_seq=9&min_position=50',
    ]);
  });

  it('an older server without GET /v1/invites gives null, not an error', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const fetchFn = (async () => json(404, { error: { code: 'not_found', message: 'no such route' } })) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    expect(await api.invites()).toBeNull();
    expect(await api.message('r', 'm')).toBeNull();
  });

  it('encodes emoji in reaction paths', async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const urls: string[] = [];
    const fetchFn = (async (url: string, init: RequestInit) => {
      urls.push(`${init.method} ${url}`);
      return json(200, { version: 1, position: 2 });
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    await api.react('r', 'm', '👍', true);
    await api.react('r', 'm', '👍', false);
    expect(urls).toEqual(['PUT /v1/rooms/r/messages/m/reactions/%F0%9F%91%8D', 'DELETE /v1/rooms/r/messages/m/reactions/%F0%9F%91%8D']);
  });
});

interface Call {
  method: string;
  url: string;
  body: unknown;
  auth: string | undefined;
}

/**
 * An Api signed in as `session()` whose fetch records each call and answers with
 * `answer(method, url)`: a Response as it is, anything else as a 200 JSON body.
 */
function recording(answer: (method: string, url: string) => unknown) {
  const storage = new MemStorage();
  storage.setItem(SESSION_KEY, JSON.stringify(session()));
  const calls: Call[] = [];
  const fetchFn = (async (url: string, init: RequestInit) => {
    const headers = init.headers as Record<string, string>;
    calls.push({ method: init.method ?? 'GET', url, body: init.body ? JSON.parse(String(init.body)) : undefined, auth: headers.authorization });
    const a = answer(init.method ?? 'GET', url);
    return a instanceof Response ? a : json(200, a);
  }) as unknown as typeof fetch;
  return { api: new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW }), calls, storage };
}

describe('Api: mentions, notification levels and read receipts', () => {
  it('PUT /v1/rooms/{id}/notifications with the level; its position is read-your-writes for later reads', async () => {
    const { api, calls } = recording((method) =>
      method === 'PUT' ? { room_id: 'r 1', level: 'none', version: 8, position: 77 } : { rooms: [] },
    );
    const ans = await api.setNotificationLevel('r 1', 'none');
    expect(ans).toEqual({ room_id: 'r 1', level: 'none', version: 8, position: 77 });
    await api.rooms();
    expect(calls).toEqual([
      { method: 'PUT', url: '/v1/rooms/r%201/notifications', body: { level: 'none' }, auth: 'Bearer a1' },
      { method: 'GET', url: '/v1/rooms?min_position=77', body: undefined, auth: 'Bearer a1' },
    ]);
  });

  it('PUT /v1/me/read-receipts with {private}', async () => {
    const { api, calls } = recording(() => ({ private: true, position: 12 }));
    expect(await api.setPrivateReceipts(true)).toEqual({ private: true, position: 12 });
    expect(calls[0]).toMatchObject({ method: 'PUT', url: '/v1/me/read-receipts', body: { private: true } });
    expect(api.minPosition).toBe(12);
  });

  it('GET /v1/mentions with the cursor and limit; GET /v1/rooms/{id}/receipts', async () => {
    const page = {
      mentions: [
        {
          room_id: 'r',
          room_kind: 'group',
          room_name: 'general',
          message_id: 'm',
          seq: 3,
          sender_id: 'ub',
          sender_username: 'bob',
          sender_display_name: 'Bob',
          body: 'hi @alice',
          sent_at: '2026-01-01T00:00:00Z',
          position: 40,
          room_mention: false,
        },
      ],
      next_before: 40,
    };
    const { api, calls } = recording((_m, url) => (url.startsWith('/v1/mentions') ? page : { receipts: [{ user_id: 'ub', seq: 3 }] }));
    expect(await api.mentions({ limit: 20 })).toEqual(page);
    await api.mentions({ before: 40, limit: 20 });
    expect(await api.receipts('r', 55)).toEqual([{ user_id: 'ub', seq: 3 }]);
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      'GET /v1/mentions?limit=20',
      'GET /v1/mentions?before=40&limit=20',
      'GET /v1/rooms/r/receipts?min_position=55',
    ]);
  });
});

describe('Api: avatars', () => {
  it("PUT /v1/me/avatar with the image's bytes, DELETE removes it; the picture is read with the token", async () => {
    const storage = new MemStorage();
    storage.setItem(SESSION_KEY, JSON.stringify(session()));
    const calls: { method: string; url: string; body: unknown; type?: string; auth?: string; min?: string }[] = [];
    const set = { avatar_id: 'a1', avatar_url: '/v1/users/u1/avatar?v=a1', content_type: 'image/jpeg', size: 9, side: 256, position: 40 };
    const none = { avatar_id: null, avatar_url: null, content_type: null, size: null, side: null, position: 41 };
    const fetchFn = (async (url: string, init: RequestInit = {}) => {
      const headers = (init.headers ?? {}) as Record<string, string>;
      calls.push({ method: init.method ?? 'GET', url, body: init.body, type: headers['content-type'], auth: headers.authorization, min: headers['x-min-position'] });
      if (url.includes('/avatar?')) return new Response(new Blob(['picture'], { type: 'image/jpeg' }), { status: 200 });
      return json(200, init.method === 'PUT' ? set : none);
    }) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    // Before any command of one's own: read as the read models are.
    await api.avatar('/v1/users/u2/avatar?v=b1');
    expect(calls.shift()).toMatchObject({ method: 'GET', url: '/v1/users/u2/avatar?v=b1', auth: 'Bearer a1', min: undefined });
    const image = new Blob(['png bytes'], { type: 'image/png' });
    expect(await api.setAvatar(image)).toEqual(set);
    expect(calls[0]).toMatchObject({ method: 'PUT', url: '/v1/me/avatar', type: 'image/png', auth: 'Bearer a1' });
    expect(calls[0]!.body).toBe(image);
    expect(await api.removeAvatar()).toEqual(none);
    expect(calls[1]).toMatchObject({ method: 'DELETE', url: '/v1/me/avatar' });
    const blob = await api.avatar(set.avatar_url);
    expect(await blob.text()).toBe('picture');
    // Read after one's own change (read-your-writes), the URL left as it is (the browser cache's key).
    expect(calls[2]).toMatchObject({ method: 'GET', url: '/v1/users/u1/avatar?v=a1', auth: 'Bearer a1', min: '41' });
    // A URL learned later than that (a live frame's position): read after it.
    await api.avatar('/v1/users/u2/avatar?v=b2', 57);
    expect(calls[3]).toMatchObject({ method: 'GET', url: '/v1/users/u2/avatar?v=b2', min: '57' });
    // only an avatar's URL is fetched this way
    await expect(api.avatar('https://elsewhere.example/x')).rejects.toBeInstanceOf(ApiError);
  });
});

describe('Api: profile, sessions and password', () => {
  it('PATCH /v1/me/profile with {display_name}; its position is read-your-writes for later reads', async () => {
    const { api, calls } = recording((method) => (method === 'PATCH' ? { display_name: 'Al', position: 31 } : { rooms: [] }));
    expect(await api.setDisplayName('Al')).toEqual({ display_name: 'Al', position: 31 });
    await api.setDisplayName('');
    await api.rooms();
    expect(calls).toEqual([
      { method: 'PATCH', url: '/v1/me/profile', body: { display_name: 'Al' }, auth: 'Bearer a1' },
      { method: 'PATCH', url: '/v1/me/profile', body: { display_name: '' }, auth: 'Bearer a1' },
      { method: 'GET', url: '/v1/rooms?min_position=31', body: undefined, auth: 'Bearer a1' },
    ]);
  });

  it('GET /v1/me/sessions; DELETE /v1/me/sessions/{id} (204, or 404 session_not_found as an ApiError)', async () => {
    const list = [
      { session_id: 's1', created_at: '2026-01-01T00:00:00Z', refreshed_at: '2026-01-02T00:00:00Z', user_agent: null, current: true },
    ];
    let gone = false;
    const { api, calls } = recording((method) => {
      if (method === 'GET') return { sessions: list };
      if (gone) return json(404, { error: { code: 'session_not_found', message: 'no such session' } });
      gone = true;
      return new Response(null, { status: 204 });
    });
    expect(await api.sessions()).toEqual(list);
    expect(await api.endSession('s 2')).toBeUndefined();
    const e = await api.endSession('s 2').catch((x) => x);
    expect(e).toMatchObject({ status: 404, code: 'session_not_found' });
    expect(calls.map((c) => `${c.method} ${c.url} ${c.auth}`)).toEqual([
      'GET /v1/me/sessions Bearer a1',
      'DELETE /v1/me/sessions/s%202 Bearer a1',
      'DELETE /v1/me/sessions/s%202 Bearer a1',
    ]);
    expect(calls[1]!.body).toBeUndefined();
  });

  it('POST /v1/me/password with {current_password, new_password}; 403 wrong_password is an error, not a refresh', async () => {
    let wrong = true;
    const { api, calls } = recording(() =>
      wrong ? json(403, { error: { code: 'wrong_password', message: 'the current password is wrong' } }) : { sessions_ended: 2 },
    );
    const e = await api.changePassword('nope', 'a new password').catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 403, code: 'wrong_password' });
    wrong = false;
    expect(await api.changePassword('old password', 'a new password')).toEqual({ sessions_ended: 2 });
    expect(calls.map((c) => c.url)).toEqual(['/v1/me/password', '/v1/me/password']);
    expect(calls[1]).toEqual({
      method: 'POST',
      url: '/v1/me/password',
      body: { current_password: 'old password', new_password: 'a new password' },
      auth: 'Bearer a1',
    });
    // The session stays as it was.
    expect(api.current?.refreshToken).toBe('r1');
  });

  it('POST /v1/me/erase with {confirm_username}; 422 confirmation_mismatch is an error, not a refresh', async () => {
    let mismatch = true;
    const { api, calls } = recording(() =>
      mismatch
        ? json(422, { error: { code: 'confirmation_mismatch', message: 'confirm_username must be your own username' } })
        : { user_id: 'u1', keys_shredded: 1, sessions_ended: 2, position: 90 },
    );
    const e = await api.eraseMe('someone else').catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 422, code: 'confirmation_mismatch' });
    // No refresh was tried, and the session is as it was.
    expect(calls.map((c) => c.url)).toEqual(['/v1/me/erase']);
    expect(api.current?.refreshToken).toBe('r1');
    mismatch = false;
    expect(await api.eraseMe('me')).toEqual({ user_id: 'u1', keys_shredded: 1, sessions_ended: 2, position: 90 });
    expect(calls[1]).toEqual({ method: 'POST', url: '/v1/me/erase', body: { confirm_username: 'me' }, auth: 'Bearer a1' });
  });

  it('endLocally signs out here without asking the server (it ended the session already)', async () => {
    const { api, calls, storage } = recording(() => ({}));
    const seen: (Session | null)[] = [];
    api.onSession((s) => seen.push(s));
    api.notePosition(12);
    api.endLocally();
    expect(api.current).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
    expect(api.minPosition).toBe(0);
    expect(seen).toEqual([null]);
    expect(calls).toEqual([]);
  });

  it('noteUser merges names into the session as stored, keeping tokens another tab rotated', async () => {
    const { api, storage } = recording(() => ({}));
    storage.setItem(SESSION_KEY, JSON.stringify(session({ accessToken: 'a5', refreshToken: 'r5', displayName: 'Old' })));
    await api.noteUser({ displayName: 'New' });
    const stored = JSON.parse(storage.getItem(SESSION_KEY)!) as Session;
    expect(stored).toMatchObject({ accessToken: 'a5', refreshToken: 'r5', displayName: 'New' });
    expect(api.current).toEqual(stored);
  });
});

describe('single sign-on', () => {
  const USER = '0190a3c2-7b1e-7c3d-8e4f-123456789abc';
  const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
  const REFRESH = 'Zm9vYmFyYmF6-_quxQUUXzm9vYmFyYmF6cXV4cXV1eA';
  const whole = `#sso&user_id=${USER}&access_token=${JWT}&refresh_token=${REFRESH}&expires_in=900`;

  it('reads the tokens of a whole fragment', () => {
    expect(isSsoFragment(whole)).toBe(true);
    expect(ssoTokens(whole)).toEqual({ user_id: USER, access_token: JWT, refresh_token: REFRESH, expires_in: 900, token_type: 'Bearer' });
    // in any order
    expect(ssoTokens(`#sso&expires_in=60&refresh_token=${REFRESH}&access_token=${JWT}&user_id=${USER}`)?.expires_in).toBe(60);
  });

  it('a partial fragment gives nothing', () => {
    for (const missing of ['user_id', 'access_token', 'refresh_token', 'expires_in']) {
      const partial = whole.replace(new RegExp(`&${missing}=[^&]*`), '');
      expect(isSsoFragment(partial)).toBe(true);
      expect(ssoTokens(partial), missing).toBeNull();
    }
    expect(ssoTokens('#sso')).toBeNull();
    expect(ssoTokens('#sso&')).toBeNull();
    expect(ssoTokens(whole.replace(`access_token=${JWT}`, 'access_token='))).toBeNull();
  });

  it('a malformed fragment gives nothing', () => {
    const bad = [
      whole.replace(USER, 'not-a-uuid'),
      whole.replace('expires_in=900', 'expires_in=abc'),
      whole.replace('expires_in=900', 'expires_in=0'),
      whole.replace('expires_in=900', 'expires_in=-5'),
      whole.replace('expires_in=900', 'expires_in=1e3'),
      whole.replace(`access_token=${JWT}`, 'access_token=a%20b'),
      whole.replace(`refresh_token=${REFRESH}`, 'refresh_token=%3Cscript%3E'),
      `${whole}&user_id=${USER}`, // twice
      '#sso&garbage',
      '#sso&%E0%A4%A',
    ];
    for (const hash of bad) expect(ssoTokens(hash), hash).toBeNull();
  });

  it('other fragments are not single sign-on: room routes stay routes', () => {
    for (const hash of ['', '#', '#/', '#/rooms/r1', `#/rooms/sso&user_id=${USER}`, '#ssox&user_id=1', `#x${whole}`]) {
      expect(isSsoFragment(hash), hash).toBe(false);
      expect(ssoTokens(hash), hash).toBeNull();
    }
    expect(routeRoom('#/rooms/r1')).toBe('r1');
    expect(routeRoom(whole)).toBeNull();
  });

  function page(hash: string) {
    const replaced: unknown[][] = [];
    const loc = { hash, pathname: '/', search: '?x=1' };
    const hist = { state: { kept: true }, replaceState: (...a: unknown[]) => void replaced.push(a) };
    return { loc, hist, replaced };
  }

  it('takes a whole fragment out of the address bar and signs in as a password login does', async () => {
    const storage = new MemStorage();
    const fetchFn = (async () => json(200, { ...tokens(1), user_id: USER, access_token: JWT, refresh_token: REFRESH })) as unknown as typeof fetch;
    const api = new Api({ storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    const seen: (Session | null)[] = [];
    api.onSession((s) => seen.push(s));
    const { loc, hist, replaced } = page(whole);
    expect(takeSsoFragment(api, loc, hist)).toBe(true);
    expect(replaced).toEqual([[{ kept: true }, '', '/?x=1']]);
    const sso = api.current!;
    expect(seen).toEqual([sso]);
    expect(JSON.parse(storage.getItem(SESSION_KEY)!)).toEqual(sso);

    // The same session a password login makes, less the username typed (read from /v1/me).
    const byPassword = await new Api({ storage: new MemStorage(), fetch: fetchFn, locks: null, kv: null, now: () => NOW }).login('al', 'pw');
    const { username, ...rest } = byPassword;
    expect(username).toBe('al');
    expect(sso).toEqual(rest);
    expect(sso).toMatchObject({ userId: USER, accessToken: JWT, refreshToken: REFRESH, expiresAt: NOW + 900_000, ttlMs: 900_000 });
  });

  it('drops a partial or malformed fragment without a session; leaves other fragments alone', () => {
    const storage = new MemStorage();
    const api = new Api({ storage, fetch: (async () => json(500, {})) as unknown as typeof fetch, locks: null, kv: null, now: () => NOW });
    for (const hash of [whole.replace(/&refresh_token=[^&]*/, ''), whole.replace(USER, 'x')]) {
      const { loc, hist, replaced } = page(hash);
      expect(takeSsoFragment(api, loc, hist)).toBe(false);
      expect(replaced).toHaveLength(1);
    }
    for (const hash of ['', '#/', '#/rooms/r1']) {
      const { loc, hist, replaced } = page(hash);
      expect(takeSsoFragment(api, loc, hist)).toBe(false);
      expect(replaced).toEqual([]);
    }
    expect(api.current).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
  });

  it('GET /v1/auth/oidc without a token; the button goes to /v1/auth/oidc/start', async () => {
    const storage = new MemStorage();
    const calls: string[] = [];
    const fetchFn = (async (url: string, init: RequestInit) => {
      calls.push(`${init.method} ${url} ${(init.headers as Record<string, string>).authorization ?? '-'}`);
      return json(200, { enabled: true, name: 'Example ID' });
    }) as unknown as typeof fetch;
    const api = new Api({ base: 'https://chat.example', storage, fetch: fetchFn, locks: null, kv: null, now: () => NOW });
    expect(await api.ssoInfo()).toEqual({ enabled: true, name: 'Example ID' });
    expect(calls).toEqual(['GET https://chat.example/v1/auth/oidc -']);
    expect(api.ssoStartUrl()).toBe('https://chat.example/v1/auth/oidc/start');
  });
});

describe('errorText', () => {
  it('shows an API error by its code when told how, else by its message or code', () => {
    const taken = new ApiError(409, 'username_taken', 'username is taken');
    expect(errorText(taken, { username_taken: 'That username is taken.' })).toBe('That username is taken.');
    expect(errorText(taken, { other: 'x' })).toBe('username is taken');
    expect(errorText(taken)).toBe('username is taken');
    expect(errorText(new ApiError(500, 'internal', ''))).toBe('internal');
    expect(errorText(new NetworkError('reset'), { reset: 'x' })).toBe('Network error: check your connection.');
    expect(errorText(new Error('boom'))).toBe('boom');
    expect(errorText('plain')).toBe('plain');
  });
});
