import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, ChatSocket, feedUrl, type SocketStatus } from './ws';

describe('backoffDelay', () => {
  it('grows exponentially up to the cap', () => {
    const max = (a: number) => backoffDelay(a, { random: () => 0.999999, base: 500, cap: 10_000 });
    expect(max(0)).toBe(499);
    expect(max(1)).toBe(999);
    expect(max(2)).toBe(1999);
    expect(max(4)).toBe(7999);
    expect(max(5)).toBe(9999);
    expect(max(50)).toBe(9999);
  });

  it('is fully jittered between 0 and the ceiling', () => {
    expect(backoffDelay(3, { random: () => 0 })).toBe(0);
    expect(backoffDelay(3, { random: () => 0.5, base: 500 })).toBe(2000);
    for (let a = 0; a < 20; a++) {
      const d = backoffDelay(a);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(10_000);
    }
  });

  it('treats a negative attempt as the first', () => {
    expect(backoffDelay(-3, { random: () => 0.999999 })).toBe(499);
  });
});

describe('feedUrl', () => {
  it('follows the page scheme, same origin', () => {
    expect(feedUrl({ protocol: 'https:', host: 'chat.example' }, 'a b')).toBe('wss://chat.example/v1/ws?access_token=a%20b');
    expect(feedUrl({ protocol: 'http:', host: '127.0.0.1:8080' }, 't')).toBe('ws://127.0.0.1:8080/v1/ws?access_token=t');
  });
});

class FakeWs {
  static all: FakeWs[] = [];
  readyState = 0;
  sent: string[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  constructor(readonly url: string) {
    FakeWs.all.push(this);
  }
  send(d: string) {
    this.sent.push(d);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  serverClose(code: number) {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
  message(data: unknown) {
    this.onmessage?.({ data: JSON.stringify(data) } as MessageEvent);
  }
}

describe('ChatSocket', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWs.all = [];
  });
  afterEach(() => vi.useRealTimers());

  function make() {
    const statuses: SocketStatus[] = [];
    const frames: unknown[] = [];
    const tokens: boolean[] = [];
    let n = 0;
    const sock = new ChatSocket(
      {
        token: async (force) => {
          tokens.push(force);
          return `t${++n}`;
        },
        opened: (send) => send({ type: 'subscribe', room_id: 'r' }),
        frame: (f) => frames.push(f),
        status: (s) => statuses.push(s),
      },
      {
        url: (t) => `ws://x/v1/ws?access_token=${t}`,
        WebSocket: FakeWs,
        backoff: { random: () => 0.5, base: 1000, cap: 10_000 },
      },
    );
    return { sock, statuses, frames, tokens };
  }

  it('subscribes on open, delivers frames and pings', async () => {
    const { sock, frames, statuses } = make();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeWs.all[0]!;
    expect(ws.url).toBe('ws://x/v1/ws?access_token=t1');
    ws.open();
    expect(JSON.parse(ws.sent[0]!)).toEqual({ type: 'subscribe', room_id: 'r' });
    ws.message({ type: 'pong' });
    expect(frames).toEqual([{ type: 'pong' }]);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(ws.sent.map((s) => JSON.parse(s).type)).toContain('ping');
    expect(statuses).toEqual(['connecting', 'open']);
    sock.stop();
  });

  it('reconnects with growing jittered delays, and at once on reconnectNow', async () => {
    const { sock } = make();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeWs.all[0]!.serverClose(1006);
    await vi.advanceTimersByTimeAsync(499);
    expect(FakeWs.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // 0.5 × 1000
    expect(FakeWs.all).toHaveLength(2);
    FakeWs.all[1]!.serverClose(1006);
    await vi.advanceTimersByTimeAsync(999); // next: 0.5 × 2000
    expect(FakeWs.all).toHaveLength(2);
    sock.reconnectNow();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWs.all).toHaveLength(3);
    FakeWs.all[2]!.open();
    expect(sock.status).toBe('open');
    sock.stop();
  });

  it('on 4001 refreshes the token and reconnects at once', async () => {
    const { sock, tokens } = make();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeWs.all[0]!.open();
    FakeWs.all[0]!.serverClose(4001);
    await vi.advanceTimersByTimeAsync(0);
    expect(tokens).toEqual([false, true]);
    expect(FakeWs.all).toHaveLength(2);
    expect(FakeWs.all[1]!.url).toContain('access_token=t2');
    sock.stop();
  });

  it('stop closes and never reconnects', async () => {
    const { sock } = make();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeWs.all[0]!.open();
    sock.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWs.all).toHaveLength(1);
  });
});
