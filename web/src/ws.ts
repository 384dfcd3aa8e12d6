// The one WebSocket to the live feed: connect with a fresh access token, (re)subscribe
// on open, ping every 20 s, reconnect with exponential back-off and full jitter (at once
// on the browser's `online` event, and after a token refresh on close code 4001).

export type SocketStatus = 'connecting' | 'open' | 'closed';

export interface BackoffOptions {
  /** First ceiling, ms. */
  base?: number;
  /** Largest ceiling, ms. */
  cap?: number;
  random?: () => number;
}

/**
 * Full jitter: a uniformly random delay between 0 and min(cap, base · 2^attempt), so
 * many clients dropped at once do not come back in step.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = opts.base ?? 500;
  const cap = opts.cap ?? 10_000;
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(cap, base * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.floor(random() * ceiling);
}

export function feedUrl(loc: { protocol: string; host: string }, token: string): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/v1/ws?access_token=${encodeURIComponent(token)}`;
}

/** Closed because the access token expired: refresh it and reconnect at once. */
export const CLOSE_TOKEN_EXPIRED = 4001;

export interface SocketHandlers {
  /** A fresh access token; `force` after a 4001 close. Rejects when the session ended. */
  token(force: boolean): Promise<string>;
  /** The socket opened: send the subscribe frames. */
  opened(send: (frame: unknown) => void): void;
  frame(frame: { type: string; [k: string]: unknown }): void;
  /** The connection's state; `closeCode` when it just closed (4001: a planned reconnect follows). */
  status(s: SocketStatus, closeCode?: number): void;
}

interface WebSocketLike {
  readyState: number;
  onopen: ((ev: Event) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface SocketOptions {
  url: (token: string) => string;
  WebSocket?: new (url: string) => WebSocketLike;
  pingMs?: number;
  /** No frame at all for this long after a ping: the connection is dead, reconnect. */
  deadMs?: number;
  backoff?: BackoffOptions;
  setTimeout?: typeof setTimeout;
  clearTimeout?: typeof clearTimeout;
}

const OPEN = 1;

export class ChatSocket {
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setTimeout> | null = null;
  private lastFrameAt = 0;
  private stopped = true;
  private forceToken = false;
  private state: SocketStatus = 'closed';
  private readonly opts: Required<Pick<SocketOptions, 'pingMs' | 'deadMs'>> & SocketOptions;

  constructor(
    private readonly handlers: SocketHandlers,
    opts: SocketOptions,
  ) {
    this.opts = { pingMs: 20_000, deadMs: 50_000, ...opts };
  }

  get status(): SocketStatus {
    return this.state;
  }

  private setStatus(s: SocketStatus, closeCode?: number): void {
    if (this.state === s) return;
    this.state = s;
    this.handlers.status(s, closeCode);
  }

  private st(f: () => void, ms: number): ReturnType<typeof setTimeout> {
    const set = this.opts.setTimeout ?? globalThis.setTimeout;
    return set.call(globalThis, f, ms);
  }
  private ct(t: ReturnType<typeof setTimeout>): void {
    const clear = this.opts.clearTimeout ?? globalThis.clearTimeout;
    clear.call(globalThis, t);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = null;
      ws.onopen = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        /* ignore */
      }
    }
    this.setStatus('closed');
  }

  /** Send a frame when open; false when it could not be sent. */
  send(frame: unknown): boolean {
    if (!this.ws || this.ws.readyState !== OPEN) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Try again now (the browser came back online): skips the pending back-off. */
  reconnectNow(): void {
    if (this.stopped) return;
    if (this.ws && (this.state === 'open' || this.state === 'connecting')) return;
    if (this.timer) this.ct(this.timer);
    this.timer = null;
    this.attempt = 0;
    void this.connect();
  }

  /** Drop the connection (the browser went offline); reconnects with back-off. */
  drop(): void {
    if (this.ws) {
      try {
        this.ws.close(4000, 'offline');
      } catch {
        /* ignore */
      }
      this.onClosed(1006);
    }
  }

  private clearTimers(): void {
    if (this.timer) this.ct(this.timer);
    if (this.pingTimer) this.ct(this.pingTimer);
    this.timer = null;
    this.pingTimer = null;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setStatus('connecting');
    let token: string;
    try {
      token = await this.handlers.token(this.forceToken);
      this.forceToken = false;
    } catch {
      // Session ended, or the refresh failed for now: retry later unless stopped.
      if (!this.stopped) this.retry();
      return;
    }
    if (this.stopped) return;
    const Ctor = this.opts.WebSocket ?? (globalThis.WebSocket as unknown as new (url: string) => WebSocketLike);
    let ws: WebSocketLike;
    try {
      ws = new Ctor(this.opts.url(token));
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.setStatus('open');
      this.schedulePing();
      this.handlers.opened((f) => this.send(f));
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame: { type: string };
      try {
        frame = JSON.parse(String(ev.data)) as { type: string };
      } catch {
        return;
      }
      if (frame && typeof frame.type === 'string') this.handlers.frame(frame);
    };
    ws.onerror = () => {
      /* a close follows */
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.onClosed(ev.code);
    };
  }

  private onClosed(code: number): void {
    const ws = this.ws;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
    }
    this.ws = null;
    if (this.pingTimer) this.ct(this.pingTimer);
    this.pingTimer = null;
    this.setStatus('closed', code);
    if (this.stopped) return;
    if (code === CLOSE_TOKEN_EXPIRED) {
      this.forceToken = true;
      this.attempt = 0;
      void this.connect();
      return;
    }
    this.retry();
  }

  private retry(): void {
    if (this.timer) this.ct(this.timer);
    const delay = backoffDelay(this.attempt, this.opts.backoff);
    this.attempt++;
    this.setStatus('closed');
    this.timer = this.st(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }

  private schedulePing(): void {
    if (this.pingTimer) this.ct(this.pingTimer);
    this.pingTimer = this.st(() => {
      this.pingTimer = null;
      if (!this.ws || this.state !== 'open') return;
      if (Date.now() - this.lastFrameAt > this.opts.deadMs) {
        // Nothing (not even a pong) for too long: the connection is gone.
        try {
          this.ws.close(4000, 'dead');
        } catch {
          /* ignore */
        }
        this.onClosed(1006);
        return;
      }
      this.send({ type: 'ping' });
      this.schedulePing();
    }, this.opts.pingMs);
  }
}
