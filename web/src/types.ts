// Shapes of the platform's public API (see docs/architecture.md and /openapi.json).

export interface TokenResponse {
  user_id: string;
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
}

export interface Me {
  id: string;
  username: string;
  display_name: string;
}

export interface UserSummary {
  user_id: string;
  username: string;
  display_name: string;
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
  last_seq: number;
  last_message: LastMessage | null;
  other_user: UserSummary | null;
  version: number;
  position: number;
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
  'member_role_changed',
  'message_sent',
  'message_edited',
  'message_deleted',
  'reaction_added',
  'reaction_removed',
  'read_marker_moved',
]);

export function isEventFrame(f: { type: string }): f is EventFrame {
  return STORED_EVENT_TYPES.has(f.type);
}
