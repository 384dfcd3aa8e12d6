// The platform's REST API, for seeding data and checking what the UI did
// (docs/architecture.md, "Public HTTP API").

import { randomBytes, randomUUID } from 'node:crypto';

export interface ApiResponse<T = any> {
    status: number;
    body: T;
    headers: Headers;
}

export class ApiError extends Error {
    constructor(
        readonly method: string,
        readonly path: string,
        readonly status: number,
        readonly body: unknown,
    ) {
        super(`${method} ${path} answered ${status}: ${JSON.stringify(body)}`);
    }
}

export const PASSWORD = 'correct horse battery staple';

/** A username unique to this run: `<prefix><8 hex>` (3–32 of [a-z0-9_.-]). */
export function uniqueName(prefix: string): string {
    return `${prefix}${randomBytes(4).toString('hex')}`.toLowerCase();
}

export interface Session {
    user_id: string;
    username: string;
    access_token: string;
    refresh_token: string;
}

export class Api {
    constructor(readonly baseURL: string) {}

    async request<T = any>(
        method: string,
        path: string,
        opts: { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
    ): Promise<ApiResponse<T>> {
        const headers: Record<string, string> = { ...(opts.headers ?? {}) };
        if (opts.token) headers.authorization = `Bearer ${opts.token}`;
        if (opts.body !== undefined) headers['content-type'] = 'application/json';
        const res = await fetch(this.baseURL + path, {
            method,
            headers,
            body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
            signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
        });
        const text = await res.text();
        let body: any = text;
        try {
            body = text ? JSON.parse(text) : undefined;
        } catch {
            // not JSON
        }
        return { status: res.status, body, headers: res.headers };
    }

    /** Like request, but throws unless the status is one of `ok` (default any 2xx). */
    async call<T = any>(method: string, path: string, opts: Parameters<Api['request']>[2] & { ok?: number[] } = {}): Promise<T> {
        const res = await this.request<T>(method, path, opts);
        const ok = opts.ok ? opts.ok.includes(res.status) : res.status >= 200 && res.status < 300;
        if (!ok) throw new ApiError(method, path, res.status, res.body);
        return res.body;
    }

    async register(username: string, password = PASSWORD, display_name?: string): Promise<Session> {
        const body = await this.call('POST', '/v1/auth/register', { body: { username, password, ...(display_name ? { display_name } : {}) } });
        return { ...body, username };
    }

    async login(username: string, password = PASSWORD): Promise<Session> {
        const body = await this.call('POST', '/v1/auth/login', { body: { username, password } });
        return { ...body, username };
    }

    /** The user id of `username` (exact match), waiting for the registration to be projected. */
    async userId(token: string, username: string, timeoutMs = 15_000): Promise<string> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const res = await this.request('GET', `/v1/users?username=${encodeURIComponent(username)}`, { token });
            if (res.status === 200) return res.body.user_id;
            if (res.status !== 404 || Date.now() > deadline) throw new ApiError('GET', '/v1/users', res.status, res.body);
            await new Promise((r) => setTimeout(r, 100));
        }
    }

    async createRoom(token: string, name: string, visibility: 'public' | 'private' = 'public', topic?: string) {
        return this.call<{ room_id: string; version: number; position: number }>('POST', '/v1/rooms', {
            token,
            body: { name, visibility, ...(topic ? { topic } : {}) },
        });
    }

    async join(token: string, roomId: string) {
        return this.call<{ room_id: string; version: number; position: number }>('POST', `/v1/rooms/${roomId}/join`, { token });
    }

    async send(token: string, roomId: string, body: string, extra: { reply_to?: string; client_msg_id?: string } = {}) {
        return this.call<{ message_id: string; seq: number; version: number; position: number }>('POST', `/v1/rooms/${roomId}/messages`, {
            token,
            body: { client_msg_id: extra.client_msg_id ?? randomUUID(), body, ...(extra.reply_to ? { reply_to: extra.reply_to } : {}) },
        });
    }

    /** The caller's joined rooms (`GET /v1/rooms`), read at or after `minPosition`. */
    async rooms(token: string, minPosition?: number): Promise<any[]> {
        const q = minPosition ? `?min_position=${minPosition}` : '';
        return (await this.call('GET', `/v1/rooms${q}`, { token })).rooms;
    }

    async publicRooms(token: string, q = ''): Promise<any[]> {
        return (await this.call('GET', `/v1/rooms/public?q=${encodeURIComponent(q)}&limit=100`, { token })).rooms;
    }

    /** Newest first. */
    async messages(token: string, roomId: string, opts: { limit?: number; beforeSeq?: number; minPosition?: number } = {}) {
        const params = new URLSearchParams();
        params.set('limit', String(opts.limit ?? 100));
        if (opts.beforeSeq !== undefined) params.set('before_seq', String(opts.beforeSeq));
        if (opts.minPosition) params.set('min_position', String(opts.minPosition));
        return this.call<{ messages: any[]; next_before_seq: number | null }>('GET', `/v1/rooms/${roomId}/messages?${params}`, { token });
    }

    /** Every message of a room, oldest first. */
    async allMessages(token: string, roomId: string, minPosition?: number): Promise<any[]> {
        const out: any[] = [];
        let before: number | undefined;
        for (let page = 0; page < 1000; page++) {
            const res = await this.messages(token, roomId, { limit: 100, beforeSeq: before, minPosition });
            out.push(...res.messages);
            if (!res.next_before_seq || res.messages.length === 0) break;
            before = res.next_before_seq;
        }
        return out.reverse();
    }

    /** The caller's profile and settings (`GET /v1/me`). */
    async me(token: string): Promise<{ id: string; username: string; display_name: string; private_receipts?: boolean; avatar_url?: string | null }> {
        return this.call('GET', '/v1/me', { token });
    }

    /** How far a room's members have read, as the room is shown it (`GET /v1/rooms/{id}/receipts`). */
    async receipts(token: string, roomId: string): Promise<{ user_id: string; seq: number }[]> {
        return (await this.call<{ receipts: { user_id: string; seq: number }[] }>('GET', `/v1/rooms/${roomId}/receipts`, { token })).receipts;
    }

    async search(token: string, q: string, minPosition?: number): Promise<any[]> {
        const params = new URLSearchParams({ q });
        if (minPosition) params.set('min_position', String(minPosition));
        return (await this.call('GET', `/v1/search/messages?${params}`, { token })).hits;
    }
}

/** Runs `tasks` with at most `concurrency` at a time; resolves to their results in order. */
export async function pool<T>(concurrency: number, count: number, task: (i: number) => Promise<T>): Promise<T[]> {
    const results = new Array<T>(count);
    let next = 0;
    const worker = async () => {
        for (;;) {
            const i = next++;
            if (i >= count) return;
            results[i] = await task(i);
        }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    return results;
}
