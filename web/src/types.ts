// Shapes of the platform's public API (see docs/architecture.md and /openapi.json).

export interface TokenResponse {
  user_id: string;
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
}

/** `GET /v1/server`: what the server keeps and accepts. */
export interface ServerInfo {
  /** Days a room keeps its messages unless it sets its own period; null: for ever. */
  retention_days: number | null;
  limits: {
    /** Characters (code points) in a message's body, once trimmed. */
    message_chars: number;
    mentions_per_message: number;
    attachments_per_message: number;
    attachment_bytes: number;
    avatar_bytes: number;
  };
}

export interface Me {
  id: string;
  username: string;
  display_name: string;
  /** Read receipts kept private (`PUT /v1/me/read-receipts`); absent from older servers and
   * until read (a registration in this browser is not read back). */
  private_receipts?: boolean;
  /** Where one's avatar is served (`GET /v1/users/{id}/avatar?v=…`); null or absent: none. */
  avatar_url?: string | null;
}

export interface UserSummary {
  user_id: string;
  username: string;
  display_name: string;
  /** Where their avatar is served; null or absent: none. */
  avatar_url?: string | null;
}

export interface LastMessage {
  seq: number;
  message_id: string;
  sender_id: string;
  /** The sender's names (null for a user not projected yet). */
  sender_username?: string | null;
  sender_display_name?: string | null;
  body: string | null;
  deleted: boolean;
  sent_at: string;
}

/** A room as one of its members sees it (`GET /v1/rooms`, `GET /v1/rooms/{id}`). */
export interface MyRoom {
  room_id: string;
  kind: 'group' | 'direct' | string;
  name: string;
  topic: string;
  visibility: 'public' | 'private' | string;
  owner_id?: string | null;
  member_count: number;
  created_at: string;
  joined: boolean;
  role: 'member' | 'admin' | 'owner' | string;
  read_seq: number;
  unread_count: number;
  /** Of the unread messages, those that mention the caller (by name or `@room`); absent from older servers. */
  unread_mentions?: number;
  /** The caller's notification level here; absent from older servers (then: the default). */
  notifications?: NotificationLevel;
  last_seq: number;
  last_message: LastMessage | null;
  other_user: UserSummary | null;
  /** Days the room keeps its messages when it sets its own period; null: the server's default
   * (absent from older servers). */
  retention_days?: number | null;
  /** Messages up to this seq have expired (absent from older servers: none). */
  expired_up_to?: number;
  version: number;
  position: number;
}

/**
 * When a member is told of a room's messages while not looking at it: `all` every message,
 * `mentions` the ones that mention them (and every message of a direct room), `none` nothing.
 * The default: `all` in a direct room, `mentions` in a group room.
 */
export type NotificationLevel = 'all' | 'mentions' | 'none';

export const NOTIFICATION_LEVELS: readonly NotificationLevel[] = ['all', 'mentions', 'none'];

/** `PUT /v1/rooms/{id}/notifications` (position null when the level was already so). */
/** `PUT /v1/rooms/{id}/retention` (position null when the period was already so). */
export interface RetentionAnswer {
  room_id: string;
  days: number | null;
  version: number;
  position: number | null;
}

export interface NotificationLevelAnswer {
  room_id: string;
  level: NotificationLevel;
  version: number;
  position: number | null;
}

/** `PUT /v1/me/read-receipts` (position null when it was already so). */
export interface ReadReceiptsAnswer {
  private: boolean;
  position: number | null;
}

/** `PATCH /v1/me/profile`: the name others see now ('' when it is the username again;
 * position null when it was already so). */
export interface ProfileAnswer {
  display_name: string;
  position: number | null;
}

/** `PUT` / `DELETE /v1/me/avatar`: one's avatar now (every field null when there is none;
 * position null when nothing changed). */
export interface AvatarAnswer {
  avatar_id: string | null;
  avatar_url: string | null;
  content_type: string | null;
  size: number | null;
  side: number | null;
  position: number | null;
}

/** One of the caller's sessions (a sign-in and its refreshes), `GET /v1/me/sessions`. */
export interface MySession {
  session_id: string;
  created_at: string;
  /** The last sign-in or refresh. */
  refreshed_at: string;
  user_agent: string | null;
  /** The session of the token the list was read with: this browser. */
  current: boolean;
}

/** `POST /v1/me/password`: the other sessions the change signed out. */
export interface PasswordChanged {
  sessions_ended: number;
}

/**
 * `POST /v1/me/erase`: the account is erased (its data keys shredded: its messages and names
 * read as "[erased]" for everyone) and every session of it ended; position null when it was
 * erased already.
 */
export interface Erasure {
  user_id: string;
  keys_shredded: number;
  sessions_ended: number;
  position: number | null;
}

/** `GET /v1/auth/oidc`: whether single sign-on is offered, and the provider's name for its button. */
export interface SsoInfo {
  enabled: boolean;
  name: string | null;
}

/** How far a member has read (`GET /v1/rooms/{id}/receipts`). */
export interface Receipt {
  user_id: string;
  seq: number;
}

/** A message that mentions the caller (`GET /v1/mentions`), newest first. */
export interface Mention {
  room_id: string;
  room_kind: 'group' | 'direct' | string;
  room_name: string;
  message_id: string;
  seq: number;
  sender_id: string;
  sender_username: string | null;
  sender_display_name: string | null;
  body: string;
  sent_at: string;
  /** The message's log position: the cursor. */
  position: number;
  /** Mentioned through `@room`, not by name. */
  room_mention: boolean;
}

export interface MentionPage {
  mentions: Mention[];
  /** `before` for the next (older) page; null when there is none. */
  next_before: number | null;
}

export interface PublicRoom {
  room_id: string;
  kind: string;
  name: string;
  topic: string;
  visibility: string;
  member_count: number;
  created_at: string;
  joined: boolean;
}

export interface Invite {
  room_id: string;
  name: string;
  topic: string;
  visibility: string;
  member_count?: number;
  invited_at?: string;
}

export interface Member {
  user_id: string;
  username: string | null;
  display_name: string | null;
  /** Where their avatar is served; null or absent: none. */
  avatar_url?: string | null;
  role: string;
  joined_at: string | null;
}

/** A message in the history shape. */
/** A file sent with a message (ADR 20): its description; the bytes are downloaded apart. */
export interface Attachment {
  attachment_id: string;
  name: string;
  size: number;
  /** Sniffed from the bytes by the server. */
  content_type: string;
  sha256: string;
  /** Images: their size; they have a thumbnail. */
  image?: { width: number; height: number };
}

export interface Message {
  seq: number;
  message_id: string;
  sender_id: string;
  body: string | null;
  deleted: boolean;
  reply_to: string | null;
  edited_at: string | null;
  edit_number: number;
  reactions: Record<string, string[]>;
  sent_at: string;
  version: number;
  /** Files sent with it (empty once deleted; absent from older servers). */
  attachments?: Attachment[];
  /** The members it mentions by name, as the server resolved them (the live feed carries
   * them; absent when none, and from history pages: the body is read then). */
  mentions?: string[];
  /** It mentions everyone (`@room` from an owner or admin); absent when not. */
  mentions_room?: boolean;
}

export interface MessagePage {
  messages: Message[];
  next_before_seq?: number | null;
  next_after_seq?: number | null;
}

export interface Presence {
  user_id: string;
  status: 'online' | 'offline' | string;
  last_seen: string | null;
}

export interface Segment {
  text: string;
  highlight: boolean;
}

export interface SearchHit {
  message_id: string;
  room_id: string;
  seq: number;
  sender_id: string;
  sent_at: string;
  body: string;
  snippet: Segment[];
  score: number;
}

export interface SearchResults {
  hits: SearchHit[];
  next_cursor: string | null;
}

/** What a command that appended answers (plus its own fields). */
export interface CommandAnswer {
  version: number;
  position: number | null;
  [key: string]: unknown;
}

export interface SendAnswer {
  message_id: string;
  seq: number;
  version: number;
  position: number;
}

// ---- WebSocket frames (server → client) ----

/** A stored room event as the live feed publishes it. */
export interface EventFrame {
  type: string;
  room_id: string;
  version: number;
  position: number;
  /** When the event was decided, by the server's clock (RFC 3339). */
  occurred_at?: string;
  data: Record<string, unknown>;
}

export interface SubscribedFrame {
  type: 'subscribed';
  room_id: string;
  version: number;
  epoch: number;
}

export interface ResyncFrame {
  type: 'resync';
  room_id: string;
  reason: string;
}

export interface TypingFrame {
  type: 'typing';
  room_id: string;
  user_id: string;
  /** Present when several typed in one window (ADR 19): all of them, `user_id` first. */
  user_ids?: string[];
}

export interface EphemeralFrame {
  type: 'ephemeral';
  room_id: string;
  user_id: string;
  body: string;
}

export interface PresenceChange {
  user_id: string;
  status: string;
  last_seen: string | null;
}

export interface PresenceFrame extends PresenceChange {
  type: 'presence';
  /** Present when one window held several changes (ADR 19): all of them, the top level's first. */
  changes?: PresenceChange[];
}

/** Why a `notification` frame was sent. */
export type NotificationReason = 'mention' | 'room_mention' | 'direct' | 'message';

/**
 * A message in a room this socket has not subscribed to, that the user's notification level
 * there asks to be told of (not tied to a subscription, carries no room version).
 */
export interface NotificationFrame {
  type: 'notification';
  room_id: string;
  reason: NotificationReason;
  message_id: string;
  seq: number;
  sender_id: string;
  body: string;
  position: number;
}

const NOTIFICATION_REASONS: ReadonlySet<string> = new Set<NotificationReason>(['mention', 'room_mention', 'direct', 'message']);

export function isNotificationFrame(f: { type: string; [k: string]: unknown }): f is NotificationFrame & { [k: string]: unknown } {
  return (
    f.type === 'notification' &&
    typeof f.room_id === 'string' &&
    typeof f.reason === 'string' &&
    NOTIFICATION_REASONS.has(f.reason) &&
    typeof f.message_id === 'string' &&
    typeof f.seq === 'number' &&
    typeof f.sender_id === 'string' &&
    typeof f.body === 'string' &&
    typeof f.position === 'number'
  );
}

/** What an erased account's names and messages read as (the server's `vault::ERASED_TEXT`). */
export const ERASED_TEXT = '[erased]';

/**
 * A member of the room changed their display name or avatar, or was erased (ADR 23): sent to
 * the subscribed members of every room they are in, with the fields that changed. A user-stream event, not a room event: it
 * carries no room version (the room's resume bookkeeping does not move), and one missed
 * (not connected) is read from the read models with the room.
 */
export interface MemberUpdatedFrame {
  type: 'member_updated';
  room_id: string;
  user_id: string;
  /** The user event's log position. */
  position: number;
  /** The name others see now (`''`: their username); `[erased]` once erased; absent when
   * only the avatar changed. */
  display_name?: string;
  /** Their avatar's URL now (null: none, also once erased); absent when it did not change. */
  avatar_url?: string | null;
  /** Their new username, when it changed (an erasure: `erased-<hex>`). */
  username?: string | null;
  /** The account was erased: its messages read as `[erased]`. */
  erased?: boolean | null;
}

export function isMemberUpdatedFrame(f: { type: string; [k: string]: unknown }): f is MemberUpdatedFrame & { [k: string]: unknown } {
  return (
    f.type === 'member_updated' &&
    typeof f.room_id === 'string' &&
    typeof f.user_id === 'string' &&
    (f.display_name === undefined || typeof f.display_name === 'string') &&
    (f.avatar_url === undefined || f.avatar_url === null || typeof f.avatar_url === 'string') &&
    (f.display_name !== undefined || f.avatar_url !== undefined) &&
    (f.username === undefined || f.username === null || typeof f.username === 'string') &&
    (f.erased === undefined || f.erased === null || typeof f.erased === 'boolean')
  );
}

export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  room_id?: string;
}

export const STORED_EVENT_TYPES = new Set([
  'room_created',
  'direct_room_opened',
  'room_renamed',
  'room_topic_changed',
  'room_visibility_changed',
  'member_invited',
  'member_joined',
  'member_left',
  'member_kicked',
  // Removed as by a kick when a member (`data: {user_id, banned_by, as_admin?}`); also a ban of
  // someone not in the room, who stays out until `member_unbanned`.
  'member_banned',
  'member_unbanned',
  'member_role_changed',
  'message_sent',
  'message_edited',
  'message_deleted',
  'reaction_added',
  'reaction_removed',
  'read_marker_moved',
  // My own notification level changed (`data: {user_id, level}`); another member's reaches
  // me as `hidden`.
  'notification_level_changed',
  // How long the room keeps its messages (`data: {days, changed_by}`; days null: the
  // server's default).
  'room_retention_changed',
  // The room's retention period passed for its messages up to `data.up_to_seq`: gone.
  'messages_expired',
  // An event only another member may see (their private read marker, their notification
  // level): just its version and position, which keep the room's versions contiguous. It
  // carries no `data`; the socket gives it an empty one.
  'hidden',
]);

export function isEventFrame(f: { type: string }): f is EventFrame {
  return STORED_EVENT_TYPES.has(f.type);
}
