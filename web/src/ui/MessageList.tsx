import { Component, createRef, type ComponentChildren } from 'preact';
import type { EphemeralItem, Jump, RoomTimeline, UserInfo } from '../chat';
import { mentionsMe, type Reader } from '../state/mentions';
import { seenBy, type Receipts } from '../state/receipts';
import { hasOlder, newestSeq, type TlMessage } from '../state/timeline';
import type { Message } from '../types';
import { memo } from './memo';
import { EphemeralRow, MessageRow, PendingRow, type QuoteInfo, type RowActions } from './MessageRow';
import { dayKey, dayLabel } from './text';

export interface ListProps {
  roomId: string;
  tv: RoomTimeline;
  ephemeral: EphemeralItem[] | undefined;
  me: string;
  users: Record<string, UserInfo>;
  quotes: Record<string, Message | 'missing'>;
  /** The room's newest seq as the room list knows it. */
  lastSeq: number;
  /** The caller's read marker: only newer rows are watched for "seen". */
  readSeq: number;
  jump: Jump | null;
  editing: number | null;
  actions: RowActions;
  /** The reader's username (null while unknown): messages naming it are highlighted. */
  myUsername: string | null;
  /** Who may mention everyone with `@room` (a group room's owners and admins); null: not known. */
  moderators: ReadonlySet<string> | null;
  /** How far the other members have read: "seen by" under one's own messages. */
  receipts: Receipts | undefined;
  /** A message's most characters (the server's limit), for the edit box. */
  maxChars: number;
  onSeen: (seq: number) => void;
  onJumpDone: (nonce: number) => void;
  onLoadOlder: () => void;
  onLoadAfter: (seq: number) => void;
}

interface ListState {
  /** New messages from others that arrived while scrolled up. */
  unseenNew: number;
  highlight: number | null;
}

interface Snapshot {
  atBottom: boolean;
  /** A row on screen and how far from the list's top it was, to keep it there. */
  anchor: HTMLElement | null;
  anchorTop: number;
  scrollTop: number;
  scrollHeight: number;
  firstSeq: number | null;
  lastSeq: number | null;
  pendingCount: number;
}

const NEAR_BOTTOM_PX = 80;
/** Messages are rendered in blocks of this many seqs: an event re-renders one block. */
const CHUNK = 50;
const NO_EPHEMERAL: EphemeralItem[] = [];
/** Readers named in a "seen by" line; the others are counted. */
const SEEN_NAMES = 3;

/** By the seq of one's own message: the ids of who has read up to it (and no further mine). */
type SeenMap = ReadonlyMap<number, readonly string[]>;
const NO_SEEN: SeenMap = new Map();

/** "Alice", "Alice and Bob", "Alice, Bob, Carol and 2 others". */
export function seenLabel(names: readonly string[]): string {
  if (names.length <= 1) return names[0] ?? '';
  if (names.length <= SEEN_NAMES) return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  const rest = names.length - SEEN_NAMES;
  return `${names.slice(0, SEEN_NAMES).join(', ')} and ${rest} other${rest === 1 ? '' : 's'}`;
}

function nameOf(users: Record<string, UserInfo>, id: string): string {
  const u = users[id];
  return u ? u.display_name || u.username : 'Unknown user';
}

/** The @username shown beside a display name that differs from it. */
function handleOf(users: Record<string, UserInfo>, id: string): string {
  const u = users[id];
  return u && u.display_name && u.display_name !== u.username ? u.username : '';
}

const dayKeys = new WeakMap<object, string>();
function dayOf(m: TlMessage): string {
  let k = dayKeys.get(m);
  if (k === undefined) {
    k = dayKey(m.sent_at);
    dayKeys.set(m, k);
  }
  return k;
}

/** What every block needs; a new object only when names, quotes or actions change. */
interface ListContext {
  me: string;
  users: Record<string, UserInfo>;
  actions: RowActions;
  quoteFor: (replyTo: string) => QuoteInfo;
  onLoadAfter: (seq: number) => void;
  reader: Reader;
  moderators: ReadonlySet<string> | null;
  /** Whether `@room` from this sender mentions everyone. */
  roomMentionCounts: (senderId: string) => boolean;
  maxChars: number;
}

interface ChunkProps {
  msgs: TlMessage[];
  eph: EphemeralItem[];
  /** Day of the message before this block ('' for none). */
  prevDay: string;
  /** Seq of the message before this block (0 for none): a jump shows a gap. */
  prevSeq: number;
  /** Identity of the quotes this block shows: changes when one of them does. */
  qsig: string;
  editing: number | null;
  highlight: number | null;
  /** "Seen by" of this block's own messages (the same object while it does not change). */
  seen: SeenMap;
  ctx: ListContext;
}

function DaySeparator({ iso }: { iso: string }) {
  return (
    <div class="day-separator" role="separator" data-testid="day-separator">
      <span>{dayLabel(iso)}</span>
    </div>
  );
}

function GapLoader({ after, onLoadAfter, label }: { after: number; onLoadAfter: (seq: number) => void; label: string }) {
  return (
    <div class="sentinel gap" data-sentinel="after" data-after={after} role="status">
      <button type="button" class="link" onClick={() => onLoadAfter(after)}>
        {label}
      </button>
    </div>
  );
}

const Chunk = memo(function Chunk({ msgs, eph, prevDay, prevSeq, editing, highlight, seen, ctx }: ChunkProps) {
  const out: ComponentChildren[] = [];
  let day = prevDay;
  let e = 0;
  const ephUpTo = (seq: number) => {
    while (e < eph.length && eph[e]!.afterSeq <= seq) {
      const it = eph[e++]!;
      const k = dayKey(it.at);
      if (k !== day) {
        day = k;
        out.push(<DaySeparator key={`d:${k}:${it.id}`} iso={it.at} />);
      }
      out.push(<EphemeralRow key={`e:${it.id}`} item={it} author={nameOf(ctx.users, it.user_id)} handle={handleOf(ctx.users, it.user_id)} />);
    }
  };
  let prev = prevSeq;
  let prevMsg: TlMessage | null = null;
  for (const m of msgs) {
    if (prev > 0 && m.seq > prev + 1) {
      out.push(<GapLoader key={`gap:${prev}`} after={prev} onLoadAfter={ctx.onLoadAfter} label="Load more messages" />);
    }
    ephUpTo(m.seq - 1);
    const k = dayOf(m);
    const newDay = k !== day;
    if (newDay) {
      day = k;
      out.push(<DaySeparator key={`d:${k}`} iso={m.sent_at} />);
    }
    const continued =
      !newDay &&
      prevMsg !== null &&
      prevMsg.seq === m.seq - 1 &&
      prevMsg.sender_id === m.sender_id &&
      !m.reply_to &&
      Date.parse(m.sent_at) - Date.parse(prevMsg.sent_at) < 5 * 60_000;
    const readers = seen.get(m.seq);
    out.push(
      <MessageRow
        key={m.client_msg_id ? `c:${m.client_msg_id}` : `m:${m.message_id}`}
        msg={m}
        mine={m.sender_id === ctx.me}
        author={nameOf(ctx.users, m.sender_id)}
        handle={handleOf(ctx.users, m.sender_id)}
        avatarUrl={ctx.users[m.sender_id]?.avatar_url ?? null}
        continued={continued}
        me={ctx.me}
        quote={m.reply_to ? ctx.quoteFor(m.reply_to) : null}
        editing={editing === m.seq}
        highlighted={highlight === m.seq}
        actions={ctx.actions}
        maxChars={ctx.maxChars}
        mentionsMe={mentionsMe(m, ctx.reader, ctx.roomMentionCounts)}
        myUsername={ctx.reader.username}
        seenBy={readers ? seenLabel(readers.map((id) => nameOf(ctx.users, id))) : ''}
        seenIds={readers ? readers.join(' ') : ''}
      />,
    );
    prev = m.seq;
    prevMsg = m;
  }
  ephUpTo(Number.MAX_SAFE_INTEGER);
  return <div class="chunk">{out}</div>;
});

interface ChunkData {
  key: number;
  msgs: TlMessage[];
  eph: EphemeralItem[];
}

/**
 * Scroll to the very bottom, and again over the next frames: blocks rendered for the
 * first time there may turn out taller or shorter than estimated.
 */
function pinBottom(el: HTMLElement, frames = 3): void {
  el.scrollTop = el.scrollHeight;
  if (frames > 0 && typeof requestAnimationFrame === 'function') {
    requestAnimationFrame(() => {
      if (el.scrollHeight - el.scrollTop - el.clientHeight > 1) pinBottom(el, frames - 1);
    });
  }
}

/** The message row at the top of the visible part of the list. */
function findAnchor(list: HTMLElement): HTMLElement | null {
  const r = list.getBoundingClientRect();
  if (typeof document.elementFromPoint === 'function') {
    for (const dy of [8, 40, 80, 140]) {
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + dy);
      const row = hit?.closest<HTMLElement>('[data-testid="message"], [data-testid="day-separator"]');
      if (row && list.contains(row)) return row;
    }
  }
  return null;
}

function sameItems<T>(a: readonly T[], b: readonly T[], from: number, to: number): boolean {
  if (a.length !== to - from) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[from + i]) return false;
  return true;
}

/**
 * The scrolling message list. A class for getSnapshotBeforeUpdate: the scroll geometry
 * is read once before each update (not in a scroll handler) to keep the position when
 * older messages are prepended and to stay at the bottom when new ones arrive.
 * Visibility (seen messages, the top and gap sentinels, "at the bottom") comes from
 * IntersectionObservers; only rows after the read marker are watched.
 */
export class MessageList extends Component<ListProps, ListState> {
  state: ListState = { unseenNew: 0, highlight: null };
  private list = createRef<HTMLDivElement>();
  private seenObserver: IntersectionObserver | null = null;
  private loadObserver: IntersectionObserver | null = null;
  private observed = new WeakSet<Element>();
  private visible = new Set<number>();
  private initialScrollDone = false;
  private highlightTimer: ReturnType<typeof setTimeout> | null = null;
  private quoteCache = new Map<string, QuoteInfo>();
  private quoteIds = new WeakMap<QuoteInfo, number>();
  private quoteSerial = 0;
  private pendingJump: Jump | null = null;
  private chunks = new Map<number, ChunkData>();
  private byId = new Map<string, TlMessage>();
  private ctx: ListContext | null = null;
  /** The last "seen by" computed, and what from. */
  private seen: { msgs: TlMessage[]; receipts: Receipts | undefined; me: string; value: SeenMap } | null = null;
  /** Each block's part of it, by block key, kept while its signature stays. */
  private seenParts = new Map<number, { sig: string; value: SeenMap }>();

  componentDidMount(): void {
    const root = this.list.current;
    if (!root || typeof IntersectionObserver === 'undefined') return;
    this.seenObserver = new IntersectionObserver(
      (entries) => {
        const read = this.props.readSeq;
        for (const e of entries) {
          const seq = Number((e.target as HTMLElement).dataset.seq);
          if (!seq) continue;
          if (e.isIntersecting) this.visible.add(seq);
          else this.visible.delete(seq);
        }
        let newest = 0;
        for (const s of this.visible) if (s > newest) newest = s;
        if (newest > read) this.props.onSeen(newest);
      },
      { root, threshold: 0.5 },
    );
    this.loadObserver = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const el = e.target as HTMLElement;
          const kind = el.dataset.sentinel;
          if (kind === 'bottom') {
            if (e.isIntersecting && this.state.unseenNew) this.setState({ unseenNew: 0 });
            continue;
          }
          if (!e.isIntersecting) continue;
          if (kind === 'top') this.props.onLoadOlder();
          else if (kind === 'after') this.props.onLoadAfter(Number(el.dataset.after));
        }
      },
      { root, rootMargin: `600px 0px ${NEAR_BOTTOM_PX}px 0px` },
    );
    this.observeNew();
    this.afterRender(null);
  }

  componentWillUnmount(): void {
    this.seenObserver?.disconnect();
    this.loadObserver?.disconnect();
    if (this.highlightTimer) clearTimeout(this.highlightTimer);
  }

  getSnapshotBeforeUpdate(prev: ListProps): Snapshot | null {
    const el = this.list.current;
    if (!el) return null;
    const msgs = prev.tv.tl.messages;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    const anchor = atBottom ? null : findAnchor(el);
    return {
      atBottom,
      anchor,
      anchorTop: anchor ? anchor.getBoundingClientRect().top : 0,
      scrollTop: el.scrollTop,
      scrollHeight: el.scrollHeight,
      firstSeq: msgs.length ? msgs[0]!.seq : null,
      lastSeq: newestSeq(prev.tv.tl),
      pendingCount: prev.tv.tl.pending.length,
    };
  }

  componentDidUpdate(prev: ListProps, _prevState: ListState, snap: Snapshot | null): void {
    if (prev.tv.tl !== this.props.tv.tl || prev.readSeq !== this.props.readSeq) this.observeNew();
    const { tv } = this.props;
    if (prev.tv.tl !== tv.tl && ((prev.tv.loadingOlder && !tv.loadingOlder) || (prev.tv.loadingNewer && !tv.loadingNewer))) {
      // A page landed: a sentinel still in range would not be reported again by the
      // observer (nothing changed for it), so have it looked at afresh.
      const root = this.list.current;
      if (root && this.loadObserver) {
        for (const el of root.querySelectorAll('[data-sentinel="top"], [data-sentinel="after"]')) {
          this.loadObserver.unobserve(el);
          this.loadObserver.observe(el);
        }
      }
    }
    if (
      prev.tv.tl !== this.props.tv.tl ||
      prev.ephemeral !== this.props.ephemeral ||
      prev.jump !== this.props.jump ||
      // a "seen by" line came or went: stay at the bottom, or where one was reading
      prev.receipts !== this.props.receipts
    ) {
      this.afterRender(snap);
    }
  }

  /** Keep the reading position: at the bottom, at a jump target, or where it was. */
  private afterRender(snap: Snapshot | null): void {
    const el = this.list.current;
    if (!el) return;
    const { tv, jump } = this.props;
    if (jump && jump.roomId === this.props.roomId && jump !== this.pendingJump && this.scrollToSeq(jump.seq)) {
      this.pendingJump = jump;
      this.initialScrollDone = true;
      this.props.onJumpDone(jump.nonce);
      return;
    }
    const msgs = tv.tl.messages;
    if (!this.initialScrollDone) {
      if (!tv.loading && (msgs.length > 0 || tv.tl.pending.length > 0 || !tv.error)) {
        pinBottom(el);
        this.initialScrollDone = true;
      }
      return;
    }
    if (!snap) return;
    const firstSeq = msgs.length ? msgs[0]!.seq : null;
    const lastSeq = newestSeq(tv.tl);
    const sentMine = tv.tl.pending.length > snap.pendingCount;
    if (sentMine || snap.atBottom) {
      pinBottom(el);
      return;
    }
    if (snap.anchor && snap.anchor.isConnected) {
      // Keep the row that was on screen where it was (older messages prepended, a gap
      // filled, a message above edited). Where the browser's scroll anchoring did it
      // already, the drift is 0.
      const drift = snap.anchor.getBoundingClientRect().top - snap.anchorTop;
      if (Math.abs(drift) >= 1) el.scrollTop += drift;
    } else if (snap.firstSeq !== null && firstSeq !== null && firstSeq < snap.firstSeq && Math.abs(el.scrollTop - snap.scrollTop) < 1) {
      el.scrollTop = snap.scrollTop + (el.scrollHeight - snap.scrollHeight);
    }
    if (snap.lastSeq !== null && lastSeq !== null && lastSeq > snap.lastSeq) {
      let n = 0;
      for (let i = msgs.length - 1; i >= 0 && msgs[i]!.seq > snap.lastSeq; i--) {
        if (msgs[i]!.sender_id !== this.props.me) n++;
      }
      if (n) this.setState((s) => ({ unseenNew: s.unseenNew + n }));
    }
  }

  private scrollToSeq(seq: number): boolean {
    const el = this.list.current?.querySelector<HTMLElement>(`[data-testid="message"][data-seq="${seq}"]`);
    if (!el) return false;
    el.scrollIntoView({ block: 'center' });
    if (this.highlightTimer) clearTimeout(this.highlightTimer);
    this.setState({ highlight: seq });
    this.highlightTimer = setTimeout(() => this.setState({ highlight: null }), 4_000);
    return true;
  }

  /** Watch the sentinels, and the rows after the read marker (few: the unread ones). */
  private observeNew(): void {
    const root = this.list.current;
    if (!root || !this.seenObserver || !this.loadObserver) return;
    for (const el of root.querySelectorAll('[data-sentinel]')) {
      if (this.observed.has(el)) continue;
      this.observed.add(el);
      this.loadObserver.observe(el);
    }
    const read = this.props.readSeq;
    const msgs = this.props.tv.tl.messages;
    // newest first; stop at the read marker
    const rows = root.querySelectorAll<HTMLElement>('[data-testid="message"][data-seq]');
    for (let i = rows.length - 1; i >= 0; i--) {
      const el = rows[i]!;
      const seq = Number(el.dataset.seq);
      if (seq <= read && msgs.length && seq < msgs[msgs.length - 1]!.seq - 200) break;
      if (seq <= read) {
        if (this.observed.has(el)) {
          this.seenObserver.unobserve(el);
          this.observed.delete(el);
          this.visible.delete(seq);
        }
        continue;
      }
      if (this.observed.has(el)) continue;
      this.observed.add(el);
      this.seenObserver.observe(el);
    }
  }

  scrollToBottom = (): void => {
    const el = this.list.current;
    if (el) pinBottom(el);
    this.setState({ unseenNew: 0 });
  };

  private quoteFor = (replyTo: string): QuoteInfo => {
    const orig: Message | 'missing' | undefined = this.byId.get(replyTo) ?? this.props.quotes[replyTo];
    const author = orig && orig !== 'missing' ? nameOf(this.props.users, orig.sender_id) : '';
    const cached = this.quoteCache.get(replyTo);
    if (cached && cached.msg === orig && cached.author === author) return cached;
    const q: QuoteInfo = { msg: orig, author };
    this.quoteCache.set(replyTo, q);
    this.quoteIds.set(q, ++this.quoteSerial);
    return q;
  };

  /** Who has seen one's own messages (computed again only when messages or receipts change). */
  private seenMap(msgs: TlMessage[], receipts: Receipts | undefined, me: string): SeenMap {
    const c = this.seen;
    if (c && c.msgs === msgs && c.receipts === receipts && c.me === me) return c.value;
    const value = receipts ? seenBy(msgs, receipts, me) : NO_SEEN;
    this.seen = { msgs, receipts, me, value };
    return value;
  }

  /** The part of `seen` in one block, the same object while it is unchanged (blocks are memoised). */
  private seenPart(key: number, seen: SeenMap, first: number, last: number): SeenMap {
    let sig = '';
    const part = new Map<number, readonly string[]>();
    for (const [seq, ids] of seen) {
      if (seq < first || seq > last) continue;
      part.set(seq, ids);
      sig += `${seq}:${ids.join(',')};`;
    }
    const cached = this.seenParts.get(key);
    if (cached && cached.sig === sig) return cached.value;
    const value = sig ? part : NO_SEEN;
    this.seenParts.set(key, { sig, value });
    return value;
  }

  /** Splits the messages into blocks of CHUNK seqs, reusing unchanged blocks. */
  private chunked(msgs: TlMessage[], eph: EphemeralItem[]): ChunkData[] {
    const out: ChunkData[] = [];
    const next = new Map<number, ChunkData>();
    let e = 0;
    let i = 0;
    while (i < msgs.length) {
      const key = Math.floor((msgs[i]!.seq - 1) / CHUNK);
      let j = i + 1;
      while (j < msgs.length && Math.floor((msgs[j]!.seq - 1) / CHUNK) === key) j++;
      const last = j >= msgs.length;
      const nextFirst = last ? Number.MAX_SAFE_INTEGER : msgs[j]!.seq;
      const e0 = e;
      while (e < eph.length && (last || eph[e]!.afterSeq < nextFirst)) e++;
      const cached = this.chunks.get(key);
      const sameMsgs = cached !== undefined && sameItems(cached.msgs, msgs, i, j);
      const sameEph = cached !== undefined && sameItems(cached.eph, eph, e0, e);
      const data: ChunkData =
        cached && sameMsgs && sameEph
          ? cached
          : {
              key,
              msgs: sameMsgs ? cached!.msgs : msgs.slice(i, j),
              eph: sameEph ? cached!.eph : e === e0 ? NO_EPHEMERAL : eph.slice(e0, e),
            };
      out.push(data);
      next.set(key, data);
      i = j;
    }
    this.chunks = next;
    return out;
  }

  render(props: ListProps, state: ListState) {
    const { tv, me, users, actions, editing, ephemeral } = props;
    const msgs = tv.tl.messages;
    if (msgs.some((m) => m.reply_to) || tv.tl.pending.some((p) => p.reply_to)) {
      const byId = new Map<string, TlMessage>();
      for (const m of msgs) byId.set(m.message_id, m);
      this.byId = byId;
    } else if (this.byId.size) {
      this.byId = new Map();
    }
    const c = this.ctx;
    const ctx: ListContext =
      c &&
      c.me === me &&
      c.users === users &&
      c.actions === actions &&
      c.onLoadAfter === props.onLoadAfter &&
      c.reader.username === props.myUsername &&
      c.moderators === props.moderators &&
      c.maxChars === props.maxChars
        ? c
        : {
            me,
            users,
            actions,
            quoteFor: this.quoteFor,
            onLoadAfter: props.onLoadAfter,
            reader: { id: me, username: props.myUsername },
            moderators: props.moderators,
            roomMentionCounts: (sender) => props.moderators === null || props.moderators.has(sender),
            maxChars: props.maxChars,
          };
    this.ctx = ctx;
    const seen = this.seenMap(msgs, props.receipts, me);

    const eph = ephemeral ?? NO_EPHEMERAL;
    const items: ComponentChildren[] = [];
    if (hasOlder(tv.tl) || tv.loadingOlder) {
      items.push(
        <div key="top" class="sentinel" data-sentinel="top" role="status">
          {tv.loadingOlder ? 'Loading older messages…' : ''}
        </div>,
      );
    } else if (msgs.length > 0) {
      items.push(
        <div key="start" class="room-start muted">
          This is the beginning of the room.
        </div>,
      );
    }
    const chunks = this.chunked(msgs, msgs.length ? eph : NO_EPHEMERAL);
    let prevDay = '';
    let prevSeq = 0;
    for (const ch of chunks) {
      let qsig = '';
      for (const m of ch.msgs) {
        if (m.reply_to) qsig += `${this.quoteIds.get(this.quoteFor(m.reply_to))},`;
      }
      const first = ch.msgs[0]!.seq;
      const lastM = ch.msgs[ch.msgs.length - 1]!;
      items.push(
        <Chunk
          key={`k:${ch.key}`}
          msgs={ch.msgs}
          eph={ch.eph}
          prevDay={prevDay}
          prevSeq={prevSeq}
          qsig={qsig}
          editing={editing !== null && editing >= first && editing <= lastM.seq ? editing : null}
          highlight={state.highlight !== null && state.highlight >= first && state.highlight <= lastM.seq ? state.highlight : null}
          seen={this.seenPart(ch.key, seen, first, lastM.seq)}
          ctx={ctx}
        />,
      );
      prevDay = dayOf(lastM);
      prevSeq = lastM.seq;
    }
    const newest = newestSeq(tv.tl);
    if (newest !== null && newest < props.lastSeq && !tv.loading) {
      items.push(<GapLoader key={`gap:${newest}`} after={newest} onLoadAfter={props.onLoadAfter} label="Load newer messages" />);
    }
    if (!msgs.length) {
      for (const it of eph) items.push(<EphemeralRow key={`e:${it.id}`} item={it} author={nameOf(users, it.user_id)} handle={handleOf(users, it.user_id)} />);
    }
    let pendingDay = prevDay;
    for (const p of tv.tl.pending) {
      const k = dayKey(p.created_at);
      if (k !== pendingDay) {
        pendingDay = k;
        items.push(<DaySeparator key={`pd:${k}`} iso={p.created_at} />);
      }
      items.push(
        <PendingRow key={`c:${p.client_msg_id}`} p={p} author={nameOf(users, me)} handle={handleOf(users, me)} quote={p.reply_to ? this.quoteFor(p.reply_to) : null} actions={actions} />,
      );
    }
    return (
      <div class="message-list-wrap">
        <div class="message-list" data-testid="message-list" ref={this.list} tabIndex={0} aria-label="Messages" role="log">
          <div class="list-spacer" aria-hidden="true" />
          <div class="list-rows">
            {tv.loading && msgs.length === 0 && (
              <p class="muted center" role="status">
                Loading messages…
              </p>
            )}
            {tv.error && msgs.length === 0 && (
              <p class="form-error center" role="alert">
                {tv.error}
              </p>
            )}
            {!tv.loading && !tv.error && msgs.length === 0 && tv.tl.pending.length === 0 && eph.length === 0 && (
              <p class="muted center">No messages yet. Say hello!</p>
            )}
            {items}
          </div>
          <div class="sentinel-bottom" data-sentinel="bottom" aria-hidden="true" />
        </div>
        {state.unseenNew > 0 && (
          <button type="button" class="new-messages-pill" data-testid="new-messages-pill" onClick={this.scrollToBottom}>
            {state.unseenNew} new message{state.unseenNew === 1 ? '' : 's'} ↓
          </button>
        )}
      </div>
    );
  }
}
