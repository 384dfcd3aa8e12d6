// The client's controller: owns the API client, the one WebSocket and the app state,
// and turns REST answers and live frames into state through the pure modules in state/.

import { Api, ApiError, errorText, isRetryable, SessionEnded, uuid, type Session } from './api';
import {
  beginResync,
  classify,
  completeResync,
  createResume,
  markApplied,
  onSubscribed,
  socketClosed,
  subscribeFrame,
  trackRoom,
  untrackRoom,
  type ResumeState,
} from './state/resume';
import { notificationReason } from './state/mentions';
import {
  eraseInEphemeral,
  eraseInHits,
  eraseInQuotes,
  namesAfter,
  renameInMentions,
  renameMembers,
  renameUser,
} from './state/members';
import { dropReceipt, mergeReceipts, moveReceipt, receiptsFrom, type Receipts } from './state/receipts';
import {
  addRoom,
  applyMemberUpdate,
  applyNotification,
  applyRoomEvent,
  emptyRooms,
  isLevel,
  markRead as markReadInList,
  mergeRoomList,
  removeRoom,
  replaceRoom,
  roomLabel,
  setLevel,
  setRetention,
  type RoomsState,
} from './state/rooms';
import {
  addPending,
  applyEvent,
  confirmSend,
  emptyTimeline,
  eraseSender,
  findById,
  findBySeq,
  hasOlder,
  mergePage,
  newestSeq,
  oldestSeq,
  resetConfirmed,
  setPendingStatus,
  startsAfter,
  type Timeline,
  type TlMessage,
} from './state/timeline';
import {
  createTypingThrottle,
  typingDue,
  typingExpired,
  typingMessageSent,
  typingSeen,
  typingStopped,
  type TypingShown,
} from './state/typing';
import { Store } from './store';
import type {
  Attachment,
  EphemeralFrame,
  EventFrame,
  Invite,
  Me,
  Member,
  MemberUpdatedFrame,
  Mention,
  Message,
  MyRoom,
  NotificationFrame,
  NotificationLevel,
  NotificationReason,
  PresenceFrame,
  SearchHit,
  ServerInfo,
  TypingFrame,
  UserSummary,
} from './types';
import { isEventFrame, isMemberUpdatedFrame, isNotificationFrame } from './types';
import { ChatSocket, CLOSE_TOKEN_EXPIRED, feedUrl, type SocketStatus } from './ws';

export const PAGE = 50;
const POLL_MS = 10_000;
const READ_DEBOUNCE_MS = 400;
/** How long a live name change is replayed over REST answers asked for before it. */
const MEMBER_UPDATE_KEEP_MS = 60_000;
/** A read model may still show the old names a little after the frame came: answers asked for
 * this soon after it get it replayed over them too. */
const MEMBER_UPDATE_LAG_MS = 3_000;

export interface RoomTimeline {
  tl: Timeline;
  /** The first page is loading. */
  loading: boolean;
  loadingOlder: boolean;
  loadingNewer: boolean;
  error: string | null;
}

export interface EphemeralItem {
  id: number;
  user_id: string;
  body: string;
  at: string;
  /** Shown after this seq (the newest known when it arrived). */
  afterSeq: number;
}

/** What the client keeps of a direct room's other person. */
function otherUserInfo(u: UserSummary): UserInfo {
  return withAvatar({ username: u.username, display_name: u.display_name }, u.avatar_url);
}

/** `info` with the avatar a read gave (none from a server without avatars: left unknown). */
function withAvatar(info: UserInfo, avatarUrl: string | null | undefined): UserInfo {
  return avatarUrl === undefined ? info : { ...info, avatar_url: avatarUrl };
}

export interface UserInfo {
  username: string;
  display_name: string;
  /** Where their avatar is served; null: none; absent: not known (no picture shown). */
  avatar_url?: string | null;
}

export interface SearchState {
  open: boolean;
  q: string;
  roomId: string;
  sort: 'relevance' | 'recent';
  hits: SearchHit[];
  cursor: string | null;
  loading: boolean;
  error: string | null;
}

/** The "Mentions" panel: `GET /v1/mentions`, a page at a time. */
export interface MentionsState {
  open: boolean;
  items: Mention[];
  /** The cursor of the next (older) page; null when there is none. */
  nextBefore: number | null;
  loading: boolean;
  /** A first page was read since the panel opened. */
  loaded: boolean;
  error: string | null;
}

/** A browser notification about to be raised. */
export interface NotifyArgs {
  roomId: string;
  senderId: string;
  body: string;
  /** The notification's tag: a message id (a second one for the same message replaces it). */
  tag: string;
  reason: NotificationReason;
}

export interface Jump {
  roomId: string;
  seq: number;
  nonce: number;
}

export interface Toast {
  id: number;
  text: string;
}

export interface AppState {
  session: Session | null;
  me: Me | null;
  /** The server's default retention and limits; null until read (or from a server without
   * `GET /v1/server`). */
  server: ServerInfo | null;
  conn: SocketStatus;
  /** A connection attempt failed or an open socket closed, and none is open since. */
  connLost: boolean;
  online: boolean;
  rooms: RoomsState;
  roomsLoaded: boolean;
  /** null: the server has no invitations route. */
  invites: Invite[] | null;
  timelines: Record<string, RoomTimeline>;
  members: Record<string, Member[]>;
  users: Record<string, UserInfo>;
  presence: Record<string, string>;
  typing: TypingShown;
  ephemeral: Record<string, EphemeralItem[]>;
  quotes: Record<string, Message | 'missing'>;
  active: string | null;
  search: SearchState;
  /** Read receipts of the rooms opened (by room id): who has read how far. */
  receipts: Record<string, Receipts>;
  mentions: MentionsState;
  jump: Jump | null;
  notifications: NotificationPermission | 'unsupported';
  toasts: Toast[];
  /** Told on the sign-in screen once signed out here (the account was erased, say). */
  signedOutNotice: string | null;
}

function initialState(session: Session | null): AppState {
  return {
    session,
    me: null,
    server: null,
    conn: 'closed',
    connLost: false,
    online: typeof navigator === 'undefined' ? true : navigator.onLine !== false,
    rooms: emptyRooms(),
    roomsLoaded: false,
    invites: null,
    timelines: {},
    members: {},
    users: {},
    presence: {},
    typing: {},
    ephemeral: {},
    quotes: {},
    active: null,
    search: { open: false, q: '', roomId: '', sort: 'relevance', hits: [], cursor: null, loading: false, error: null },
    receipts: {},
    mentions: { open: false, items: [], nextBefore: null, loading: false, loaded: false, error: null },
    jump: null,
    notifications: typeof Notification === 'undefined' ? 'unsupported' : Notification.permission,
    toasts: [],
    signedOutNotice: null,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function routeRoom(hash: string): string | null {
  const m = /^#\/rooms\/([^/?#]+)/.exec(hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

export function navigate(roomId: string | null): void {
  const h = roomId ? `#/rooms/${encodeURIComponent(roomId)}` : '#/';
  if (location.hash !== h) location.hash = h;
}

/** Adds an event listener; returns its removal. */
export function listen<K extends keyof WindowEventMap>(target: Window, type: K, f: (e: WindowEventMap[K]) => void): () => void;
export function listen<K extends keyof DocumentEventMap>(target: Document, type: K, f: (e: DocumentEventMap[K]) => void): () => void;
export function listen(target: EventTarget, type: string, f: (e: Event) => void): () => void {
  target.addEventListener(type, f);
  return () => target.removeEventListener(type, f);
}

export class Chat {
  readonly api: Api;
  readonly store: Store<AppState>;
  private socket: ChatSocket | null = null;
  /** The access token the socket last connected with. */
  private wsToken = '';
  private resume: ResumeState = createResume();
  /** Rooms a subscribe was sent for on the current socket. */
  private subscribedOn = new Set<string>();
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private lastPoll = 0;
  private typingSent = createTypingThrottle();
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  private readTimers: Record<string, ReturnType<typeof setTimeout>> = {};
  private readWanted: Record<string, number> = {};
  private readPosted: Record<string, number> = {};
  private quoteLoads = new Set<string>();
  private memberLoads: Record<string, ReturnType<typeof setTimeout>> = {};
  /** Rooms whose receipts are being read, with the members whose marker moved live meanwhile. */
  private receiptLoads = new Map<string, Set<string>>();
  private pollSoonTimer: ReturnType<typeof setTimeout> | null = null;
  private pollSoonAfter = 0;
  /** Bumped when the mentions panel opens: an answer for an earlier opening is dropped. */
  private mentionsSerial = 0;
  private ephemeralId = 0;
  private toastId = 0;
  private jumpNonce = 0;
  /** Live name changes and erasures as they arrived: replayed over REST answers asked for
   * before them (which may still show the old names). */
  private memberUpdates: { at: number; f: MemberUpdatedFrame }[] = [];
  /** The log position of each avatar URL a `member_updated` frame told of: its bytes are read there or later. */
  private avatarPositions = new Map<string, number>();
  private running = false;
  private cleanups: (() => void)[] = [];

  constructor(api?: Api) {
    this.api = api ?? new Api();
    this.store = new Store(initialState(this.api.current));
    this.api.onSession((s) => this.sessionChanged(s));
  }

  get state(): AppState {
    return this.store.get();
  }

  private get me(): string {
    return this.state.session?.userId ?? '';
  }

  // ---------- lifecycle ----------

  /** Wire browser events once (hash, focus, online, storage). */
  attach(): void {
    const onHash = () => this.setActive(routeRoom(location.hash));
    const onFocus = () => {
      if (Date.now() - this.lastPoll > 2_000) void this.poll();
      this.readAgain();
    };
    const onVisibility = () => {
      if (document.visibilityState === 'visible') onFocus();
    };
    const onOnline = () => {
      this.store.set({ online: true });
      this.socket?.reconnectNow();
      void this.poll();
    };
    const onOffline = () => {
      this.store.set({ online: false });
      this.socket?.drop();
    };
    const onStorage = (e: StorageEvent) => {
      if (e.key === null || e.key === 'chat.session') this.api.adoptStored();
    };
    this.cleanups.push(
      listen(window, 'hashchange', onHash),
      listen(window, 'focus', onFocus),
      listen(document, 'visibilitychange', onVisibility),
      listen(window, 'online', onOnline),
      listen(window, 'offline', onOffline),
      listen(window, 'storage', onStorage),
    );
    onHash();
    if (this.api.current) void this.start();
  }

  private sessionChanged(s: Session | null): void {
    const prev = this.state.session;
    if (!s) {
      this.stop();
      this.store.set(() => ({ ...initialState(null), active: this.state.active }));
      return;
    }
    if (prev && prev.userId !== s.userId) {
      // Another tab signed in as someone else: start over as them.
      location.reload();
      return;
    }
    this.store.set({ session: s, signedOutNotice: null });
    if (!prev) void this.start();
  }

  private async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.resume = createResume();
    this.subscribedOn.clear();
    this.socket = new ChatSocket(
      {
        token: async (expired) => {
          // After a 4001 close the token the socket used has expired; usually a newer one
          // is already here (refreshed on schedule, or by another tab).
          let t = await this.api.accessToken();
          if (expired && t === this.wsToken) t = (await this.api.refresh()).accessToken;
          this.wsToken = t;
          return t;
        },
        opened: (send) => {
          this.subscribedOn.clear();
          for (const id of this.resume.keys()) {
            send(subscribeFrame(this.resume, id));
            this.subscribedOn.add(id);
          }
        },
        frame: (f) => this.onFrame(f),
        status: (st, code) => this.onStatus(st, code),
      },
      { url: (t) => feedUrl(location, t) },
    );
    this.loadMe();
    void this.loadServer();
    await this.poll();
    if (!this.running) return;
    this.socket.start();
    this.pollTimer = setInterval(() => void this.poll(), POLL_MS);
    const active = this.state.active;
    if (active) this.openRoom(active);
  }

  stop(): void {
    this.running = false;
    this.socket?.stop();
    this.socket = null;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    if (this.pollSoonTimer) clearTimeout(this.pollSoonTimer);
    this.pollSoonTimer = null;
    this.receiptLoads.clear();
    for (const t of Object.values(this.readTimers)) clearTimeout(t);
    for (const t of Object.values(this.memberLoads)) clearTimeout(t);
    this.readTimers = {};
    this.memberLoads = {};
    this.readWanted = {};
    this.readPosted = {};
    this.memberUpdates = [];
    this.avatarPositions.clear();
    this.resume = createResume();
  }

  /**
   * Who is signed in. A registration in this browser knows it all (no read: the new user
   * may not be projected yet, and a 404 is an error in the console); a login knows the
   * username and reads the display name; a single sign-on reads both (and keeps the username
   * with the session, as a login does).
   */
  private async loadMe(): Promise<void> {
    const s = this.api.current;
    if (s?.username) {
      const me: Me = { id: s.userId, username: s.username, display_name: s.displayName ?? s.username };
      this.store.set((st) => ({ me, users: { ...st.users, [me.id]: { username: me.username, display_name: me.display_name } } }));
      if (s.displayName) return;
    }
    for (let i = 0; i < 20 && this.running; i++) {
      try {
        const me = await this.api.me();
        this.store.set((s) => ({
          me,
          users: { ...s.users, [me.id]: withAvatar({ username: me.username, display_name: me.display_name }, me.avatar_url) },
        }));
        if (!this.api.current?.username) void this.api.noteUser({ username: me.username }).catch(() => undefined);
        return;
      } catch (e) {
        if (e instanceof SessionEnded) return;
        // A fresh registration is not projected yet: wait a little.
        await sleep(Math.min(2_000, 200 * (i + 1)));
      }
    }
  }

  /** What the server keeps and accepts, read once per start; retried while it is unreachable. */
  private async loadServer(): Promise<void> {
    for (let i = 0; i < 10 && this.running; i++) {
      try {
        const server = await this.api.server();
        this.store.set({ server });
        return;
      } catch (e) {
        if (!isRetryable(e)) return;
        await sleep(Math.min(5_000, 500 * (i + 1)));
      }
    }
  }

  // ---------- auth ----------

  async login(username: string, password: string): Promise<void> {
    await this.api.login(username, password);
  }

  async register(username: string, password: string, displayName: string): Promise<void> {
    await this.api.register(username, password, displayName || undefined);
  }

  logout(): void {
    this.api.logout();
    navigate(null);
  }

  /**
   * Erases one's account for good (`confirmUsername`: one's username, typed again), then signs
   * out here as a logout does (the server ended every session already) and says why on the
   * sign-in screen. A refusal (`422 confirmation_mismatch`) is thrown, still signed in.
   */
  async eraseAccount(confirmUsername: string): Promise<void> {
    await this.api.eraseMe(confirmUsername);
    this.api.endLocally();
    navigate(null);
    this.store.set({ signedOutNotice: 'Your account was erased.' });
  }

  // ---------- toasts ----------

  toast(text: string): void {
    const id = ++this.toastId;
    this.store.set((s) => ({ toasts: [...s.toasts.slice(-3), { id, text }] }));
    setTimeout(() => this.store.set((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) })), 6_000);
  }

  dismissToast(id: number): void {
    this.store.set((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) }));
  }

  // ---------- socket ----------

  private onStatus(st: SocketStatus, closeCode?: number): void {
    if (st === 'open') {
      this.store.set({ conn: st, connLost: false });
      void this.loadPresence();
    } else {
      if (st === 'closed') {
        socketClosed(this.resume);
        this.subscribedOn.clear();
        // A close for an expired token is followed by an immediate reconnect: no banner
        // unless that fails too.
        this.store.set({ conn: st, connLost: this.running && closeCode !== CLOSE_TOKEN_EXPIRED });
        return;
      }
      this.store.set({ conn: st });
    }
  }

  private subscribe(roomId: string): void {
    if (!this.socket || this.socket.status !== 'open' || this.subscribedOn.has(roomId)) return;
    if (this.socket.send(subscribeFrame(this.resume, roomId))) this.subscribedOn.add(roomId);
  }

  private unsubscribe(roomId: string): void {
    untrackRoom(this.resume, roomId);
    if (this.subscribedOn.delete(roomId)) this.socket?.send({ type: 'unsubscribe', room_id: roomId });
  }

  private onFrame(f: { type: string; [k: string]: unknown }): void {
    // A `hidden` frame only moves the room's version on: nothing to apply.
    if (f.type === 'hidden' && typeof f.data !== 'object') f = { ...f, data: {} };
    if (isEventFrame(f)) {
      this.onEvent(f);
      return;
    }
    if (isNotificationFrame(f)) {
      this.onNotification(f);
      return;
    }
    // No room version: never classified, buffered or taken for a gap (the resume stays).
    if (isMemberUpdatedFrame(f)) {
      this.onMemberUpdated(f);
      return;
    }
    switch (f.type) {
      case 'subscribed':
        onSubscribed(this.resume, f.room_id as string);
        break;
      case 'resync':
        this.resync(f.room_id as string);
        break;
      case 'typing':
        this.onTyping(f as unknown as TypingFrame);
        break;
      case 'ephemeral':
        this.onEphemeral(f as unknown as EphemeralFrame);
        break;
      case 'presence': {
        const p = f as unknown as PresenceFrame;
        this.store.set((s) => {
          const presence = { ...s.presence };
          for (const c of p.changes ?? [p]) presence[c.user_id] = c.status;
          return { presence };
        });
        break;
      }
      case 'error':
        // A subscribe refused (removed from a room meanwhile): the next poll settles it.
        if (f.code === 'not_a_member' || f.code === 'room_not_found') void this.poll();
        break;
      default:
        break;
    }
  }

  private onEvent(f: EventFrame): void {
    const verdict = classify(this.resume, f);
    if (verdict === 'apply') {
      markApplied(this.resume, f);
      this.applyLive(f, true);
    } else if (verdict === 'gap') {
      const min = beginResync(this.resume, f.room_id, f);
      if (min !== null) void this.reloadRoom(f.room_id, min);
    }
  }

  private viewing(): string | null {
    if (typeof document === 'undefined') return this.state.active;
    return document.visibilityState === 'visible' ? this.state.active : null;
  }

  private applyLive(f: EventFrame, live: boolean): void {
    const s = this.state;
    // The server's time of the event (older servers: the browser's clock).
    const now = f.occurred_at ?? new Date().toISOString();
    const r = applyRoomEvent(s.rooms, f, { me: this.me, viewing: this.viewing(), now });
    const patch: Partial<AppState> = { rooms: r.state };
    const tv = s.timelines[f.room_id];
    if (tv) {
      const tl = applyEvent(tv.tl, f, { me: this.me, now });
      if (tl !== tv.tl) patch.timelines = { ...s.timelines, [f.room_id]: { ...tv, tl } };
    }
    if (f.type === 'message_sent') {
      const typing = typingStopped(s.typing, f.room_id, f.data.sender_id as string);
      if (typing !== s.typing) patch.typing = typing;
    }
    if (f.type === 'member_joined' && f.data.user_id === this.me && s.invites) {
      patch.invites = s.invites.filter((i) => i.room_id !== f.room_id);
    }
    const receipts = this.receiptsAfter(s.receipts[f.room_id], f);
    if (receipts !== s.receipts[f.room_id]) patch.receipts = { ...s.receipts, [f.room_id]: receipts! };
    this.store.set(patch);
    if (r.removedMe) {
      const name = s.rooms.byId[f.room_id] ? roomLabel(s.rooms.byId[f.room_id]!) : 'a room';
      this.forgetRoom(f.room_id);
      if (f.type === 'member_kicked' || f.type === 'member_banned') this.toast(`You were removed from ${name}.`);
      return;
    }
    if (r.stale) void this.refreshRoomCounts(f.room_id, f.position);
    if (r.membersChanged && s.members[f.room_id]) this.loadMembersSoon(f.room_id, f.position);
    // A newcomer's name is loaded when they join, so that their first message shows it
    // at once rather than "Unknown user" until a load after it.
    else if (f.type === 'member_joined' && !s.users[f.data.user_id as string]) this.loadMembersSoon(f.room_id, f.position);
    else if (f.type === 'message_sent' && !s.users[f.data.sender_id as string]) this.loadMembersSoon(f.room_id, f.position);
    if (f.type === 'message_sent' && live && this.resume.get(f.room_id)?.live) this.notifyEvent(f);
  }

  /**
   * A room's receipts after a live event: another member's marker moved (noted for a read of
   * the receipts under way), or they left.
   */
  private receiptsAfter(r: Receipts | undefined, f: EventFrame): Receipts | undefined {
    const user = f.data.user_id;
    if (typeof user !== 'string' || user === this.me) return r;
    if (f.type === 'read_marker_moved' && typeof f.data.seq === 'number') {
      this.receiptLoads.get(f.room_id)?.add(user);
      return r && moveReceipt(r, user, f.data.seq);
    }
    if (f.type === 'member_left' || f.type === 'member_kicked' || f.type === 'member_banned') return r && dropReceipt(r, user);
    return r;
  }

  /**
   * A `notification` frame: a message in a room this socket does not follow. The room's
   * counts go up; a room the list does not know yet (just added) is read by a poll.
   */
  private onNotification(f: NotificationFrame): void {
    const s = this.state;
    const r = applyNotification(s.rooms, f, { me: this.me, viewing: this.viewing(), now: new Date().toISOString() });
    if (r.state !== s.rooms) this.store.set({ rooms: r.state });
    // A room one was just added to (a direct room someone opened, say): the list, with it.
    if (!r.known) this.pollSoon(f.position);
    else if (!s.users[f.sender_id]) this.loadMembersSoon(f.room_id, f.position);
    const read = (s.rooms.byId[f.room_id]?.read_seq ?? 0) >= f.seq; // on another device
    if (f.sender_id !== this.me && !read) {
      this.notify({ roomId: f.room_id, senderId: f.sender_id, body: f.body, tag: f.message_id, reason: f.reason });
    }
  }

  /**
   * A `member_updated` frame: a member's new name, or their erasure, shown at once wherever
   * this client shows them. It is a user's event, not the room's: no version or position of
   * the room moves.
   */
  private onMemberUpdated(f: MemberUpdatedFrame): void {
    const now = Date.now();
    // The frame can come before the read models have the picture: its bytes are read after it.
    if (typeof f.avatar_url === 'string' && typeof f.position === 'number') {
      this.avatarPositions.set(f.avatar_url, Math.max(this.avatarPositions.get(f.avatar_url) ?? 0, f.position));
    }
    this.memberUpdates = [...this.memberUpdates.filter((u) => u.at > now - MEMBER_UPDATE_KEEP_MS).slice(-199), { at: now, f }];
    this.store.set((s) => this.memberUpdatePatch(s, f));
  }

  /** The state after a `member_updated` frame (an empty patch when it changes nothing). */
  private memberUpdatePatch(s: AppState, f: MemberUpdatedFrame): Partial<AppState> {
    const patch: Partial<AppState> = {};
    const users = renameUser(s.users, f, s.members[f.room_id]);
    if (users !== s.users) patch.users = users;
    const members = renameMembers(s.members, f);
    if (members !== s.members) patch.members = members;
    const rooms = applyMemberUpdate(s.rooms, f);
    if (rooms !== s.rooms) patch.rooms = rooms;
    const mentions = renameInMentions(s.mentions.items, f);
    if (mentions !== s.mentions.items) patch.mentions = { ...s.mentions, items: mentions };
    if (s.me && f.user_id === s.me.id && !f.erased) {
      const names = namesAfter(f, s.me);
      if (
        names &&
        (names.username !== s.me.username || names.display_name !== s.me.display_name || (names.avatar_url ?? null) !== (s.me.avatar_url ?? null))
      ) {
        patch.me = { ...s.me, ...names };
      }
    }
    if (!f.erased) return patch;
    const tv = s.timelines[f.room_id];
    if (tv) {
      const tl = eraseSender(tv.tl, f.user_id);
      if (tl !== tv.tl) patch.timelines = { ...s.timelines, [f.room_id]: { ...tv, tl } };
    }
    const hits = eraseInHits(s.search.hits, f);
    if (hits !== s.search.hits) patch.search = { ...s.search, hits };
    const eph = s.ephemeral[f.room_id];
    const ephemeral = eph && eraseInEphemeral(eph, f);
    if (eph && ephemeral !== eph) patch.ephemeral = { ...s.ephemeral, [f.room_id]: ephemeral! };
    const quotes = eraseInQuotes(s.quotes, f);
    if (quotes !== s.quotes) patch.quotes = quotes;
    return patch;
  }

  /**
   * Replays the live name changes that arrived since `sentAt` (ms), or just before, over what a
   * REST answer asked for then set (in the order they came: the last one wins).
   */
  private replayMemberUpdates(sentAt: number): void {
    const later = this.memberUpdates.filter((u) => u.at >= sentAt - MEMBER_UPDATE_LAG_MS);
    if (later.length === 0) return;
    this.store.set((s) => {
      let cur = s;
      for (const u of later) cur = { ...cur, ...this.memberUpdatePatch(cur, u.f) };
      return cur === s ? {} : cur;
    });
  }

  private forgetRoom(roomId: string): void {
    this.unsubscribe(roomId);
    this.receiptLoads.delete(roomId);
    this.store.set((s) => {
      const timelines = { ...s.timelines };
      delete timelines[roomId];
      const receipts = { ...s.receipts };
      delete receipts[roomId];
      return { rooms: removeRoom(s.rooms, roomId, Date.now()), timelines, receipts };
    });
    if (this.state.active === roomId) navigate(null);
  }

  /** Reload a room after `resync` (or a gap), then release the live events held meanwhile. */
  private async reloadRoom(roomId: string, minPosition: number): Promise<void> {
    for (let attempt = 0; this.running && this.resume.has(roomId); attempt++) {
      const sentAt = Date.now();
      try {
        const { data: room, epoch } = await this.api.room(roomId, minPosition);
        let page: Message[] | null = null;
        if (this.state.timelines[roomId]) {
          const p = await this.api.messages(roomId, { limit: PAGE }, Math.max(minPosition, room.position));
          page = p.data.messages;
        }
        // Markers moved in the gap are not coming live: read the receipts again too.
        const receipts = this.state.receipts[roomId] ? await this.api.receipts(roomId, Math.max(minPosition, room.position)) : null;
        if (!this.resume.has(roomId)) return;
        this.store.set((s) => {
          const patch: Partial<AppState> = { rooms: replaceRoom(s.rooms, room) };
          const tv = s.timelines[roomId];
          if (tv && page) patch.timelines = { ...s.timelines, [roomId]: { ...tv, tl: mergePage(resetConfirmed(tv.tl), page), loading: false } };
          if (receipts) patch.receipts = { ...s.receipts, [roomId]: receiptsFrom(receipts) };
          return patch;
        });
        this.replayMemberUpdates(sentAt);
        const done = completeResync(this.resume, roomId, { version: room.version, position: room.position, epoch });
        for (const f of done.apply) this.applyLive(f, true);
        if (done.again !== null) {
          minPosition = done.again;
          continue;
        }
        return;
      } catch (e) {
        if (e instanceof SessionEnded) return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 403)) {
          this.forgetRoom(roomId);
          return;
        }
        await sleep(Math.min(10_000, 1_000 * 2 ** attempt));
      }
    }
  }

  private resync(roomId: string): void {
    const min = beginResync(this.resume, roomId);
    if (min !== null) void this.reloadRoom(roomId, min);
  }

  // ---------- polling: rooms, invites, presence ----------

  /** Reads the room list and the invitations (the list at or after log position `minPosition`). */
  async poll(minPosition?: number): Promise<void> {
    if (!this.api.current) return;
    this.lastPoll = Date.now();
    await Promise.all([this.loadRooms(minPosition), this.loadInvites()]);
  }

  /** A poll shortly, with the room list at or after `minPosition` (once for a burst of reasons). */
  private pollSoon(minPosition = 0): void {
    this.pollSoonAfter = Math.max(this.pollSoonAfter, minPosition);
    if (this.pollSoonTimer || !this.running) return;
    this.pollSoonTimer = setTimeout(() => {
      this.pollSoonTimer = null;
      const after = this.pollSoonAfter;
      this.pollSoonAfter = 0;
      void this.poll(after || undefined);
    }, 300);
  }

  private async loadRooms(minPosition?: number): Promise<void> {
    const sentAt = Date.now();
    try {
      const { data, epoch } = await this.api.rooms(minPosition);
      const s = this.state;
      const r = mergeRoomList(s.rooms, data.rooms, sentAt);
      for (const room of data.rooms) {
        if (!r.state.byId[room.room_id]) continue;
        trackRoom(this.resume, room.room_id, { version: room.version, position: room.position, epoch });
        this.subscribe(room.room_id);
      }
      for (const id of r.removed) this.unsubscribe(id);
      const users = { ...s.users };
      for (const room of data.rooms) {
        if (room.other_user) users[room.other_user.user_id] = otherUserInfo(room.other_user);
        const last = room.last_message;
        if (last?.sender_username && !users[last.sender_id]) {
          users[last.sender_id] = { username: last.sender_username, display_name: last.sender_display_name || last.sender_username };
        }
      }
      const timelines = { ...s.timelines };
      for (const id of r.removed) delete timelines[id];
      this.store.set({ rooms: r.state, roomsLoaded: true, users, timelines: r.removed.length ? timelines : s.timelines });
      this.replayMemberUpdates(sentAt);
      if (r.added.length) {
        void this.loadPresence();
        void this.warmNames();
      }
      if (s.active && r.removed.includes(s.active)) navigate(null);
    } catch (e) {
      if (!(e instanceof SessionEnded)) this.store.set({ roomsLoaded: true });
    }
  }

  /** Names for the authors of the last messages in the list (the first rooms only). */
  private async warmNames(): Promise<void> {
    const s = this.state;
    const todo = s.rooms.order
      .slice(0, 15)
      .filter((id) => {
        const r = s.rooms.byId[id]!;
        return r.kind !== 'direct' && r.last_message && !s.users[r.last_message.sender_id] && !s.members[id];
      });
    for (const id of todo) {
      if (!this.running) return;
      if (!this.state.members[id]) await this.loadMembers(id);
    }
  }

  private async loadInvites(): Promise<void> {
    try {
      const invites = await this.api.invites();
      this.store.set({ invites });
    } catch {
      /* keep what we have */
    }
  }

  private async loadPresence(only?: string[]): Promise<void> {
    const ids = new Set<string>(only ?? []);
    if (!only) {
      for (const id of this.state.rooms.order) {
        const other = this.state.rooms.byId[id]?.other_user;
        if (other) ids.add(other.user_id);
      }
    }
    if (ids.size === 0) return;
    try {
      const list = await this.api.presence([...ids].slice(0, 100));
      this.store.set((s) => {
        const presence = { ...s.presence };
        for (const p of list) presence[p.user_id] = p.status;
        return { presence };
      });
    } catch {
      /* the dots stay as they are */
    }
  }

  /**
   * Reads a room's entry again (its unread counts after an expiry, which only the server can
   * tell), unless live events moved it past the read meanwhile.
   */
  private async refreshRoomCounts(roomId: string, position: number): Promise<void> {
    try {
      const { data: room } = await this.api.room(roomId, position);
      this.store.set((s) => {
        const cur = s.rooms.byId[roomId];
        if (!cur || cur.version > room.version) return {};
        return { rooms: replaceRoom(s.rooms, room) };
      });
    } catch {
      /* the counts stay as they are until the next read of the room list */
    }
  }

  /** A room one just joined, created or opened: read it back, list it, follow it. */
  private async addJoinedRoom(roomId: string, position: number | null | undefined): Promise<MyRoom> {
    const { data: room, epoch } = await this.api.room(roomId, position ?? undefined);
    trackRoom(this.resume, roomId, { version: room.version, position: room.position, epoch });
    this.store.set((s) => {
      const users = { ...s.users };
      if (room.other_user) users[room.other_user.user_id] = otherUserInfo(room.other_user);
      return { rooms: addRoom(s.rooms, room, Date.now()), users };
    });
    this.subscribe(roomId);
    if (room.other_user) void this.loadPresence();
    return room;
  }

  // ---------- room actions ----------

  async createRoom(name: string, topic: string, visibility: 'public' | 'private'): Promise<string> {
    const ans = await this.api.createRoom({ name, topic: topic || undefined, visibility }, uuid());
    await this.addJoinedRoom(ans.room_id, ans.position);
    return ans.room_id;
  }

  async joinRoom(roomId: string): Promise<void> {
    let position: number | null = null;
    const listed = this.state.rooms.byId[roomId];
    try {
      if (!listed) position = (await this.api.join(roomId)).position;
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'already_member')) throw e;
    }
    await this.addJoinedRoom(roomId, position);
    this.store.set((s) => ({ invites: s.invites ? s.invites.filter((i) => i.room_id !== roomId) : s.invites }));
  }

  async leaveRoom(roomId: string): Promise<void> {
    await this.api.leave(roomId);
    this.forgetRoom(roomId);
  }

  async openDirect(username: string): Promise<string> {
    const user = await this.api.userByName(username.trim().toLowerCase());
    const ans = await this.api.direct(user.user_id);
    await this.addJoinedRoom(ans.room_id, ans.position);
    return ans.room_id;
  }

  async inviteUser(roomId: string, username: string): Promise<UserInfo> {
    const user = await this.api.userByName(username.trim().toLowerCase());
    await this.api.invite(roomId, user.user_id);
    return { username: user.username, display_name: user.display_name };
  }

  async changeRole(roomId: string, userId: string, role: 'admin' | 'member'): Promise<void> {
    const ans = await this.api.changeRole(roomId, userId, role);
    await this.loadMembers(roomId, ans.position ?? undefined);
  }

  async kick(roomId: string, userId: string): Promise<void> {
    const ans = await this.api.kick(roomId, userId);
    await this.loadMembers(roomId, ans.position ?? undefined);
  }

  // ---------- members and names ----------

  /** Presence of a room's members (the members panel). */
  loadMemberPresence(roomId: string): void {
    const members = this.state.members[roomId];
    if (members?.length) void this.loadPresence(members.slice(0, 100).map((m) => m.user_id));
  }

  async loadMembers(roomId: string, minPosition?: number): Promise<void> {
    const sentAt = Date.now();
    try {
      const members = await this.api.members(roomId, minPosition);
      this.store.set((s) => {
        const users = { ...s.users };
        for (const m of members) {
          if (m.username) users[m.user_id] = withAvatar({ username: m.username, display_name: m.display_name || m.username }, m.avatar_url);
        }
        return { members: { ...s.members, [roomId]: members }, users };
      });
      this.replayMemberUpdates(sentAt);
    } catch {
      /* names fall back to "someone" */
    }
  }

  private loadMembersSoon(roomId: string, minPosition: number): void {
    if (this.memberLoads[roomId]) clearTimeout(this.memberLoads[roomId]);
    this.memberLoads[roomId] = setTimeout(() => {
      delete this.memberLoads[roomId];
      void this.loadMembers(roomId, minPosition);
    }, 300);
  }

  userName(userId: string): string {
    const u = this.state.users[userId];
    return u ? u.display_name || u.username : 'Someone';
  }

  // ---------- timeline ----------

  setActive(roomId: string | null): void {
    if (this.state.active === roomId) return;
    this.store.set({ active: roomId });
    if (roomId && this.running) this.openRoom(roomId);
  }

  private setTimeline(roomId: string, f: (tv: RoomTimeline) => RoomTimeline): void {
    this.store.set((s) => {
      const tv = s.timelines[roomId];
      if (!tv) return {};
      const next = f(tv);
      return next === tv ? {} : { timelines: { ...s.timelines, [roomId]: next } };
    });
  }

  private minPositionFor(roomId: string): number {
    return this.resume.get(roomId)?.position ?? 0;
  }

  openRoom(roomId: string): void {
    const s = this.state;
    if (!s.members[roomId]) void this.loadMembers(roomId);
    if (!s.receipts[roomId]) void this.loadReceipts(roomId);
    if (s.timelines[roomId]) return;
    // Created before the first page is asked for, so live events arriving meanwhile are kept.
    this.store.set({
      timelines: {
        ...s.timelines,
        [roomId]: {
          tl: startsAfter(emptyTimeline(), s.rooms.byId[roomId]?.expired_up_to ?? 0),
          loading: true,
          loadingOlder: false,
          loadingNewer: false,
          error: null,
        },
      },
    });
    void this.loadLatest(roomId);
  }

  private async loadLatest(roomId: string): Promise<void> {
    try {
      const { data } = await this.api.messages(roomId, { limit: PAGE }, this.minPositionFor(roomId));
      this.setTimeline(roomId, (tv) => ({ ...tv, tl: mergePage(tv.tl, data.messages), loading: false, error: null }));
    } catch (e) {
      this.setTimeline(roomId, (tv) => ({ ...tv, loading: false, error: errorText(e) }));
    }
  }

  /**
   * Reads how far the room's members have read ("seen by"); the live `read_marker_moved`
   * frames keep it current from then on. Markers that move while the read is under way are
   * kept (the answer may be older than them).
   */
  async loadReceipts(roomId: string): Promise<void> {
    if (this.receiptLoads.has(roomId)) return;
    const movedLive = new Set<string>();
    this.receiptLoads.set(roomId, movedLive);
    // Live frames apply from now on.
    this.store.set((s) => (s.receipts[roomId] ? {} : { receipts: { ...s.receipts, [roomId]: {} } }));
    try {
      const list = await this.api.receipts(roomId, this.minPositionFor(roomId));
      if (this.receiptLoads.get(roomId) !== movedLive) return;
      this.store.set((s) => {
        if (!s.receipts[roomId]) return {};
        return { receipts: { ...s.receipts, [roomId]: mergeReceipts(s.receipts[roomId], list, movedLive) } };
      });
    } catch {
      // Read again when the room is opened next.
      if (this.receiptLoads.get(roomId) === movedLive) {
        this.store.set((s) => {
          const receipts = { ...s.receipts };
          delete receipts[roomId];
          return { receipts };
        });
      }
    } finally {
      if (this.receiptLoads.get(roomId) === movedLive) this.receiptLoads.delete(roomId);
    }
  }

  retryLoad(roomId: string): void {
    this.setTimeline(roomId, (tv) => ({ ...tv, loading: true, error: null }));
    void this.loadLatest(roomId);
  }

  async loadOlder(roomId: string): Promise<void> {
    const tv = this.state.timelines[roomId];
    if (!tv || tv.loading || tv.loadingOlder) return;
    const oldest = oldestSeq(tv.tl);
    if (oldest === null || !hasOlder(tv.tl)) return;
    this.setTimeline(roomId, (t) => ({ ...t, loadingOlder: true }));
    try {
      const { data } = await this.api.messages(roomId, { before_seq: oldest, limit: PAGE });
      // None older: they expired (the room's retention) before this client heard of it.
      this.setTimeline(roomId, (t) => ({
        ...t,
        tl: data.messages.length ? mergePage(t.tl, data.messages) : startsAfter(t.tl, oldest - 1),
        loadingOlder: false,
      }));
    } catch (e) {
      this.setTimeline(roomId, (t) => ({ ...t, loadingOlder: false }));
      this.toast(`Could not load older messages: ${errorText(e)}`);
    }
  }

  /** Loads the messages after `seq` (filling a gap left by a jump, or up to the newest). */
  async loadAfter(roomId: string, seq: number): Promise<void> {
    const tv = this.state.timelines[roomId];
    if (!tv || tv.loadingNewer) return;
    this.setTimeline(roomId, (t) => ({ ...t, loadingNewer: true }));
    try {
      const { data } = await this.api.messages(roomId, { after_seq: seq, limit: PAGE });
      this.setTimeline(roomId, (t) => ({ ...t, tl: mergePage(t.tl, data.messages), loadingNewer: false }));
    } catch (e) {
      this.setTimeline(roomId, (t) => ({ ...t, loadingNewer: false }));
      this.toast(`Could not load messages: ${errorText(e)}`);
    }
  }

  /** Opens a room at a message (a search hit): loads the page around it and highlights it. */
  async jumpTo(roomId: string, seq: number): Promise<void> {
    navigate(roomId);
    this.setActive(roomId);
    const tv = this.state.timelines[roomId];
    const nonce = ++this.jumpNonce;
    if (!tv || !findBySeq(tv.tl, seq)) {
      if (!tv) this.openRoom(roomId);
      try {
        const half = Math.floor(PAGE / 2);
        const [before, after] = await Promise.all([
          this.api.messages(roomId, { before_seq: seq + 1, limit: half }),
          this.api.messages(roomId, { after_seq: seq, limit: half }),
        ]);
        this.setTimeline(roomId, (t) => ({
          ...t,
          tl: mergePage(mergePage(t.tl, before.data.messages), after.data.messages),
        }));
      } catch (e) {
        this.toast(`Could not open the message: ${errorText(e)}`);
        return;
      }
    }
    if (nonce === this.jumpNonce) this.store.set({ jump: { roomId, seq, nonce } });
  }

  clearJump(nonce: number): void {
    if (this.state.jump?.nonce === nonce) this.store.set({ jump: null });
  }

  /** The quoted original of a reply: from the timeline, else fetched once. */
  requestQuote(roomId: string, messageId: string): void {
    if (this.state.quotes[messageId] || this.quoteLoads.has(messageId)) return;
    const tv = this.state.timelines[roomId];
    if (tv && findById(tv.tl, messageId)) return;
    this.quoteLoads.add(messageId);
    void this.api
      .message(roomId, messageId)
      .then((m) => this.store.set((s) => ({ quotes: { ...s.quotes, [messageId]: m ?? 'missing' } })))
      .catch(() => this.quoteLoads.delete(messageId));
  }

  // ---------- sending ----------

  send(roomId: string, body: string, replyTo: string | null, attachments?: Attachment[]): void {
    const cmid = uuid();
    this.setTimeline(roomId, (tv) => ({
      ...tv,
      tl: addPending(tv.tl, { client_msg_id: cmid, body, reply_to: replyTo, attachments }),
    }));
    void this.deliver(roomId, cmid);
  }

  /**
   * Uploads `files` to the room, then sends them in one message with `caption` (or, without
   * one, their names: a message always has a body). False when an upload failed (told).
   */
  async sendFiles(roomId: string, files: File[], caption: string, replyTo: string | null): Promise<boolean> {
    const uploaded: Attachment[] = [];
    for (const f of files) {
      try {
        uploaded.push(await this.api.upload(roomId, f, f.name || 'file'));
      } catch (e) {
        this.toast(`${f.name || 'The file'} was not sent: ${errorText(e)}`);
        return false;
      }
    }
    const body = caption.trim() || uploaded.map((a) => a.name).join(', ');
    this.send(roomId, body, replyTo, uploaded);
    return true;
  }

  /** Re-sends a failed message with the SAME client_msg_id: the server deduplicates. */
  retry(roomId: string, cmid: string): void {
    void this.deliver(roomId, cmid);
  }

  discard(roomId: string, cmid: string): void {
    this.setTimeline(roomId, (tv) => ({ ...tv, tl: { ...tv.tl, pending: tv.tl.pending.filter((p) => p.client_msg_id !== cmid) } }));
  }

  private async deliver(roomId: string, cmid: string): Promise<void> {
    const p = this.state.timelines[roomId]?.tl.pending.find((x) => x.client_msg_id === cmid);
    if (!p) return;
    this.setTimeline(roomId, (tv) => ({ ...tv, tl: setPendingStatus(tv.tl, cmid, 'pending') }));
    try {
      const answer = await this.api.send(roomId, {
        client_msg_id: cmid,
        body: p.body,
        reply_to: p.reply_to,
        attachments: p.attachments?.map((a) => a.attachment_id),
      });
      // The others stop showing one as typing when the message reaches them: typing again
      // (even within TYPING_SEND_MS of the last notice) must tell them at once.
      typingMessageSent(this.typingSent, roomId);
      this.setTimeline(roomId, (tv) => ({
        ...tv,
        tl: confirmSend(tv.tl, {
          me: this.me,
          client_msg_id: cmid,
          body: p.body,
          reply_to: p.reply_to,
          attachments: p.attachments,
          answer,
        }),
      }));
    } catch (e) {
      this.setTimeline(roomId, (tv) => ({ ...tv, tl: setPendingStatus(tv.tl, cmid, 'failed', errorText(e)) }));
      if (!isRetryable(e) && !(e instanceof SessionEnded)) this.toast(`Message not sent: ${errorText(e)}`);
    }
  }

  async edit(roomId: string, msg: TlMessage, body: string): Promise<void> {
    const ans = await this.api.edit(roomId, msg.message_id, body);
    this.applyLocal(roomId, 'message_edited', ans.version, ans.position, {
      seq: msg.seq,
      message_id: msg.message_id,
      body,
      edit_number: ans.edit_number,
    });
  }

  async deleteMessage(roomId: string, msg: TlMessage): Promise<void> {
    const ans = await this.api.deleteMessage(roomId, msg.message_id);
    this.applyLocal(roomId, 'message_deleted', ans.version, ans.position, { seq: msg.seq, message_id: msg.message_id });
  }

  async toggleReaction(roomId: string, msg: TlMessage, emoji: string): Promise<void> {
    const on = !(msg.reactions[emoji] ?? []).includes(this.me);
    try {
      const ans = await this.api.react(roomId, msg.message_id, emoji, on);
      this.applyLocal(roomId, on ? 'reaction_added' : 'reaction_removed', ans.version, ans.position, {
        seq: msg.seq,
        message_id: msg.message_id,
        emoji,
        user_id: this.me,
      });
    } catch (e) {
      this.toast(`Reaction failed: ${errorText(e)}`);
    }
  }

  private applyLocal(roomId: string, type: string, version: number, position: number | null, data: Record<string, unknown>): void {
    if (position === null || position === undefined) return; // changed nothing
    const ev: EventFrame = { type, room_id: roomId, version, position, data };
    this.setTimeline(roomId, (tv) => {
      const tl = applyEvent(tv.tl, ev, { me: this.me, local: true });
      return tl === tv.tl ? tv : { ...tv, tl };
    });
  }

  // ---------- read markers ----------

  /** The newest seq visible on screen in the open room (the view reports it). */
  seen(roomId: string, seq: number): void {
    if (typeof document !== 'undefined' && (document.visibilityState !== 'visible' || !document.hasFocus())) {
      this.readWanted[roomId] = Math.max(this.readWanted[roomId] ?? 0, seq);
      return;
    }
    this.readWanted[roomId] = Math.max(this.readWanted[roomId] ?? 0, seq);
    const room = this.state.rooms.byId[roomId];
    const posted = Math.max(this.readPosted[roomId] ?? 0, room?.read_seq ?? 0);
    if (seq <= posted) {
      if (room && (room.unread_count > 0 || room.unread_mentions > 0) && seq >= room.last_seq) {
        this.store.set((s) => ({ rooms: markReadInList(s.rooms, roomId, seq) }));
      }
      return;
    }
    if (this.readTimers[roomId]) return;
    this.readTimers[roomId] = setTimeout(() => {
      delete this.readTimers[roomId];
      void this.postRead(roomId);
    }, READ_DEBOUNCE_MS);
  }

  /** Focus came back: what was seen meanwhile can be marked read now. */
  private readAgain(): void {
    const active = this.state.active;
    if (active && this.readWanted[active]) this.seen(active, this.readWanted[active]!);
  }

  private async postRead(roomId: string): Promise<void> {
    const seq = this.readWanted[roomId] ?? 0;
    const room = this.state.rooms.byId[roomId];
    if (!room || seq <= Math.max(this.readPosted[roomId] ?? 0, room.read_seq)) return;
    this.readPosted[roomId] = seq;
    this.store.set((s) => ({ rooms: markReadInList(s.rooms, roomId, seq) }));
    try {
      await this.api.markRead(roomId, seq);
    } catch {
      this.readPosted[roomId] = 0;
    }
  }

  // ---------- typing and ephemeral ----------

  typing(roomId: string): void {
    if (!typingDue(this.typingSent, roomId, Date.now())) return;
    if (!this.socket?.send({ type: 'typing', room_id: roomId })) {
      this.api.request('POST', `/v1/rooms/${encodeURIComponent(roomId)}/typing`).catch(() => undefined);
    }
  }

  private onTyping(f: TypingFrame): void {
    const typists = (f.user_ids ?? [f.user_id]).filter((u) => u !== this.me);
    if (typists.length === 0) return;
    const now = Date.now();
    this.store.set((s) => ({
      typing: typists.reduce((shown, u) => typingSeen(shown, f.room_id, u, now), s.typing),
    }));
    if (!this.state.members[f.room_id] && typists.some((u) => !this.state.users[u])) {
      void this.loadMembers(f.room_id);
    }
    this.scheduleTypingSweep();
  }

  private scheduleTypingSweep(): void {
    if (this.typingTimer) return;
    this.typingTimer = setTimeout(() => {
      this.typingTimer = null;
      const { shown, changed, left } = typingExpired(this.state.typing, Date.now());
      if (changed) this.store.set({ typing: shown });
      if (left) this.scheduleTypingSweep();
    }, 500);
  }

  async sendEphemeral(roomId: string, body: string): Promise<void> {
    await this.api.ephemeral(roomId, body);
  }

  private onEphemeral(f: EphemeralFrame): void {
    const tv = this.state.timelines[f.room_id];
    const afterSeq = (tv && newestSeq(tv.tl)) ?? this.state.rooms.byId[f.room_id]?.last_seq ?? 0;
    const item: EphemeralItem = { id: ++this.ephemeralId, user_id: f.user_id, body: f.body, at: new Date().toISOString(), afterSeq };
    this.store.set((s) => ({ ephemeral: { ...s.ephemeral, [f.room_id]: [...(s.ephemeral[f.room_id] ?? []).slice(-49), item] } }));
    const room = this.state.rooms.byId[f.room_id];
    if (room && f.user_id !== this.me && this.resume.get(f.room_id)?.live) {
      const reason = notificationReason({ me: this.me, level: room.notifications, direct: room.kind === 'direct', senderId: f.user_id });
      if (reason) this.notify({ roomId: f.room_id, senderId: f.user_id, body: f.body, tag: `ephemeral-${item.id}`, reason });
    }
  }

  // ---------- search ----------

  setSearch(patch: Partial<SearchState>): void {
    this.store.set((s) => ({ search: { ...s.search, ...patch } }));
  }

  async runSearch(more = false): Promise<void> {
    const st = this.state.search;
    if (!st.q.trim()) return;
    if (this.state.mentions.open) this.closeMentions();
    this.setSearch({ loading: true, error: null, open: true, ...(more ? {} : { hits: [], cursor: null }) });
    try {
      const res = await this.api.search({
        q: st.q.trim(),
        room_id: st.roomId || undefined,
        sort: st.sort,
        cursor: more ? st.cursor : undefined,
        limit: 20,
      });
      this.store.set((s) => ({
        search: { ...s.search, hits: more ? [...s.search.hits, ...res.hits] : res.hits, cursor: res.next_cursor, loading: false },
      }));
      // names for the hits' senders
      const rooms = new Set(res.hits.map((h) => h.room_id));
      for (const r of rooms) if (!this.state.members[r]) void this.loadMembers(r);
    } catch (e) {
      this.setSearch({ loading: false, error: errorText(e) });
    }
  }

  // ---------- notifications ----------

  async enableNotifications(): Promise<void> {
    if (typeof Notification === 'undefined') return;
    try {
      const p = await Notification.requestPermission();
      this.store.set({ notifications: p });
    } catch {
      this.store.set({ notifications: Notification.permission });
    }
  }

  /** A live message in a followed room: a browser notification when the room's level asks for one. */
  private notifyEvent(f: EventFrame): void {
    const room = this.state.rooms.byId[f.room_id];
    const d = f.data;
    if (!room || typeof d.sender_id !== 'string' || typeof d.message_id !== 'string') return;
    const reason = notificationReason({
      me: this.me,
      level: room.notifications,
      direct: room.kind === 'direct',
      senderId: d.sender_id,
      mentions: Array.isArray(d.mentions) ? d.mentions.filter((u): u is string => typeof u === 'string') : undefined,
      mentionsRoom: d.mentions_room === true,
    });
    if (reason) this.notify({ roomId: f.room_id, senderId: d.sender_id, body: String(d.body ?? ''), tag: d.message_id, reason });
  }

  /** The title of a browser notification. */
  private notificationTitle(a: NotifyArgs): string {
    const room = this.state.rooms.byId[a.roomId];
    const sender = this.userName(a.senderId);
    if (!room) return sender;
    if (room.kind === 'direct') return roomLabel(room);
    const where = roomLabel(room);
    if (a.reason === 'mention') return `${sender} mentioned you in ${where}`;
    if (a.reason === 'room_mention') return `${sender} mentioned @room in ${where}`;
    return `${sender} in ${where}`;
  }

  /**
   * Raises a browser notification when allowed, unless the room is on screen; clicking it
   * brings the window forward and opens the room.
   */
  private notify(a: NotifyArgs): void {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    const hidden = typeof document !== 'undefined' && document.visibilityState !== 'visible';
    if (!hidden && this.state.active === a.roomId) return;
    try {
      const n = new Notification(this.notificationTitle(a), { body: a.body.slice(0, 200), tag: a.tag });
      n.onclick = () => {
        window.focus();
        navigate(a.roomId);
        n.close();
      };
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  }

  // ---------- notification levels and settings ----------

  /** The caller's notification level in a room (the list shows it at once). */
  async setNotificationLevel(roomId: string, level: NotificationLevel): Promise<void> {
    const ans = await this.api.setNotificationLevel(roomId, level);
    this.store.set((s) => ({ rooms: setLevel(s.rooms, roomId, isLevel(ans.level) ? ans.level : level) }));
  }

  /** How long a room keeps its messages (`null`: the server's default); shown at once. */
  async setRetention(roomId: string, days: number | null): Promise<void> {
    const ans = await this.api.setRetention(roomId, days);
    this.store.set((s) => ({ rooms: setRetention(s.rooms, roomId, ans.days) }));
  }

  /** Keeps one's read receipts private, or shows them again. */
  async setPrivateReceipts(priv: boolean): Promise<void> {
    const ans = await this.api.setPrivateReceipts(priv);
    this.store.set((s) => ({ me: s.me ? { ...s.me, private_receipts: ans.private === true } : s.me }));
  }

  /**
   * Changes the name others see (`''`: one's username again) and shows it at once wherever
   * this client shows one's name; resolves to the name shown.
   */
  async setDisplayName(name: string): Promise<string> {
    const ans = await this.api.setDisplayName(name);
    const me = this.me;
    const shown = ans.display_name || this.state.me?.username || this.state.users[me]?.username || '';
    this.store.set((s) => {
      const patch: Partial<AppState> = {};
      if (s.me) patch.me = { ...s.me, display_name: shown };
      const u = s.users[me];
      if (u) patch.users = { ...s.users, [me]: { ...u, display_name: shown } };
      let members: Record<string, Member[]> | null = null;
      for (const [roomId, list] of Object.entries(s.members)) {
        if (!list.some((m) => m.user_id === me)) continue;
        members ??= { ...s.members };
        members[roomId] = list.map((m) => (m.user_id === me ? { ...m, display_name: shown } : m));
      }
      if (members) patch.members = members;
      return patch;
    });
    // A registration's session carries the display name (shown on the next load unread).
    if (this.api.current?.displayName !== undefined) await this.api.noteUser({ displayName: shown }).catch(() => undefined);
    return shown;
  }

  /**
   * Sets the picture others see beside one's name (PNG, JPEG, WebP or GIF, at most 2 MiB; the
   * server keeps a square of its middle) and shows it at once wherever this client shows one;
   * resolves to its URL (null: the server keeps none).
   */
  async setAvatar(file: Blob): Promise<string | null> {
    const ans = await this.api.setAvatar(file);
    this.showMyAvatar(ans.avatar_url);
    return ans.avatar_url;
  }

  /**
   * The bytes of the picture at `url` (an `avatar_url`), once the read models have it: after
   * one's own commands, and after the live frame that told of it.
   */
  avatar(url: string): Promise<Blob> {
    return this.api.avatar(url, this.avatarPositions.get(url) ?? 0);
  }

  /** Removes one's avatar (the initial shows again), everywhere this client shows it. */
  async removeAvatar(): Promise<void> {
    const ans = await this.api.removeAvatar();
    this.showMyAvatar(ans.avatar_url);
  }

  private showMyAvatar(url: string | null): void {
    const me = this.me;
    this.store.set((s) => {
      const patch: Partial<AppState> = {};
      if (s.me) patch.me = { ...s.me, avatar_url: url };
      const u = s.users[me];
      if (u) patch.users = { ...s.users, [me]: { ...u, avatar_url: url } };
      let members: Record<string, Member[]> | null = null;
      for (const [roomId, list] of Object.entries(s.members)) {
        if (!list.some((m) => m.user_id === me)) continue;
        members ??= { ...s.members };
        members[roomId] = list.map((m) => (m.user_id === me ? { ...m, avatar_url: url } : m));
      }
      if (members) patch.members = members;
      return patch;
    });
  }

  /** Reads one's settings (`GET /v1/me`) when not known yet (a registration in this browser). */
  async loadSettings(): Promise<void> {
    if (this.state.me?.private_receipts !== undefined) return;
    try {
      const me = await this.api.me();
      this.store.set((s) => ({
        me: { ...me, private_receipts: me.private_receipts ?? false },
        users: { ...s.users, [me.id]: withAvatar({ username: me.username, display_name: me.display_name }, me.avatar_url) },
      }));
    } catch {
      /* shown as not private (an account's default) until read */
    }
  }

  // ---------- mentions ----------

  openMentions(): void {
    this.mentionsSerial++;
    this.store.set((s) => ({
      mentions: { open: true, items: [], nextBefore: null, loading: false, loaded: false, error: null },
      search: s.search.open ? { ...s.search, open: false } : s.search,
    }));
    void this.loadMentions(false);
  }

  closeMentions(): void {
    this.store.set((s) => ({ mentions: { ...s.mentions, open: false } }));
  }

  /** The first page of one's mentions, or (`more`) the next older one. */
  async loadMentions(more: boolean): Promise<void> {
    const st = this.state.mentions;
    if (st.loading || (more && st.nextBefore === null)) return;
    const before = more ? st.nextBefore : null;
    const serial = this.mentionsSerial;
    const sentAt = Date.now();
    this.store.set((s) => ({ mentions: { ...s.mentions, loading: true, error: null } }));
    try {
      const page = await this.api.mentions({ before, limit: 20 });
      if (serial !== this.mentionsSerial) return;
      this.store.set((s) => {
        const users = { ...s.users };
        for (const m of page.mentions) {
          if (m.sender_username && !users[m.sender_id]) {
            users[m.sender_id] = { username: m.sender_username, display_name: m.sender_display_name || m.sender_username };
          }
        }
        const items = more ? [...s.mentions.items, ...page.mentions.filter((m) => !s.mentions.items.some((x) => x.message_id === m.message_id))] : page.mentions;
        return { users, mentions: { ...s.mentions, items, nextBefore: page.next_before, loading: false, loaded: true } };
      });
      this.replayMemberUpdates(sentAt);
    } catch (e) {
      if (serial === this.mentionsSerial) this.store.set((s) => ({ mentions: { ...s.mentions, loading: false, error: errorText(e) } }));
    }
  }

  /** Opens a mention: its room, at the message. */
  openMention(m: Mention): void {
    this.closeMentions();
    void this.jumpTo(m.room_id, m.seq);
  }
}
