import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { errorText } from '../api';
import { navigate } from '../chat';
import { roomLabel, type RoomEntry } from '../state/rooms';
import { findById, type TlMessage } from '../state/timeline';
import { NOTIFICATION_LEVELS, type Member, type NotificationLevel } from '../types';
import { Avatar } from './Avatar';
import { trimmedChars, CharCount, MESSAGE_CHARS } from './charLimit';
import { useApp, useChat } from './context';
import { FormError, useBusy } from './forms';
import { BackIcon, CloseButton } from './icons';
import { MessageList } from './MessageList';
import type { RowActions } from './MessageRow';

const drafts = new Map<string, string>();

export function RoomView({ roomId }: { roomId: string }) {
  const chat = useChat();
  const room = useApp((s) => s.rooms.byId[roomId]);
  const loaded = useApp((s) => s.roomsLoaded);
  const [editing, setEditing] = useState<number | null>(null);
  const [replyTo, setReplyTo] = useState<TlMessage | null>(null);
  const [membersOpen, setMembersOpen] = useState(false);
  const composerRef = useRef<HTMLTextAreaElement>(null);

  const actions = useMemo<RowActions>(
    () => ({
      edit: (msg, body) => chat.edit(roomId, msg, body),
      startEdit: (seq) => {
        setEditing(seq);
        if (seq === null) composerRef.current?.focus();
      },
      remove: (msg) => {
        chat.deleteMessage(roomId, msg).catch((e) => chat.toast(`Could not delete: ${errorText(e)}`));
      },
      react: (msg, emoji) => void chat.toggleReaction(roomId, msg, emoji),
      reply: (msg) => {
        setReplyTo(msg);
        composerRef.current?.focus();
      },
      retry: (cmid) => chat.retry(roomId, cmid),
      discard: (cmid) => chat.discard(roomId, cmid),
      jumpTo: (seq) => void chat.jumpTo(roomId, seq),
      requestQuote: (mid) => chat.requestQuote(roomId, mid),
    }),
    [roomId],
  );

  if (!room) {
    return (
      <section class="room-view empty-room" data-testid="room-view" data-room-id={roomId}>
        {loaded ? (
          <div class="center stack">
            <p>You are not a member of this room, or it does not exist.</p>
            <a href="#/">Back to your rooms</a>
          </div>
        ) : (
          <p class="muted center">Loading…</p>
        )}
      </section>
    );
  }

  return (
    <section class="room-view" data-testid="room-view" data-room-id={roomId} aria-labelledby="room-title">
      <RoomHeader room={room} membersOpen={membersOpen} toggleMembers={() => setMembersOpen(!membersOpen)} />
      <div class="room-body">
        <div class="room-main">
          <Timeline roomId={roomId} room={room} editing={editing} actions={actions} />
          <TypingIndicator roomId={roomId} />
          <Composer
            roomId={roomId}
            textareaRef={composerRef}
            replyTo={replyTo}
            cancelReply={() => setReplyTo(null)}
            editLast={() => {
              const tv = chat.state.timelines[roomId];
              const me = chat.state.session?.userId;
              if (!tv || !me) return false;
              for (let i = tv.tl.messages.length - 1; i >= 0; i--) {
                const m = tv.tl.messages[i]!;
                if (m.sender_id === me && !m.deleted) {
                  setEditing(m.seq);
                  return true;
                }
              }
              return false;
            }}
          />
        </div>
        {membersOpen && <MembersPanel room={room} onClose={() => setMembersOpen(false)} />}
      </div>
    </section>
  );
}

function Timeline({ roomId, room, editing, actions }: { roomId: string; room: RoomEntry; editing: number | null; actions: RowActions }) {
  const chat = useChat();
  const tv = useApp((s) => s.timelines[roomId]);
  const ephemeral = useApp((s) => s.ephemeral[roomId]);
  const me = useApp((s) => s.session?.userId ?? '');
  const users = useApp((s) => s.users);
  const quotes = useApp((s) => s.quotes);
  const jump = useApp((s) => s.jump);
  const myUsername = useApp((s) => s.me?.username ?? null);
  const receipts = useApp((s) => s.receipts[roomId]);
  const members = useApp((s) => s.members[roomId]);
  const moderators = useMemo(() => moderatorsOf(room.kind, members), [room.kind, members]);
  const maxChars = useApp((s) => s.server?.limits.message_chars ?? MESSAGE_CHARS);
  const onSeen = useCallback((seq: number) => chat.seen(roomId, seq), [roomId]);
  const onJumpDone = useCallback((nonce: number) => chat.clearJump(nonce), []);
  const onLoadOlder = useCallback(() => void chat.loadOlder(roomId), [roomId]);
  const onLoadAfter = useCallback((seq: number) => void chat.loadAfter(roomId, seq), [roomId]);
  useEffect(() => {
    if (!chat.state.timelines[roomId]) chat.openRoom(roomId);
  }, [roomId]);
  if (!tv) return <div class="message-list-wrap" />;
  return (
    <MessageList
      roomId={roomId}
      tv={tv}
      ephemeral={ephemeral}
      me={me}
      users={users}
      quotes={quotes}
      lastSeq={room.last_seq}
      readSeq={room.read_seq}
      jump={jump && jump.roomId === roomId ? jump : null}
      editing={editing}
      actions={actions}
      myUsername={myUsername}
      moderators={moderators}
      receipts={receipts}
      maxChars={maxChars}
      onSeen={onSeen}
      onJumpDone={onJumpDone}
      onLoadOlder={onLoadOlder}
      onLoadAfter={onLoadAfter}
    />
  );
}

const NOBODY: ReadonlySet<string> = new Set();

/** Who may mention everyone with `@room`: a group room's owners and admins (null until the members are read). */
function moderatorsOf(kind: string, members: Member[] | undefined): ReadonlySet<string> | null {
  if (kind === 'direct') return NOBODY;
  if (!members) return null;
  return new Set(members.filter((m) => m.role === 'owner' || m.role === 'admin').map((m) => m.user_id));
}

const LEVEL_LABELS: Record<NotificationLevel, string> = {
  all: 'All messages',
  mentions: 'Mentions',
  none: 'Nothing',
};

const RETENTION_CHOICES: readonly number[] = [1, 7, 30, 90, 365];

function daysText(days: number): string {
  return days === 1 ? '1 day' : `${days} days`;
}

/** The server's default period as the retention control names it (`undefined`: not known). */
function serverDefaultLabel(days: number | null | undefined): string {
  if (days === undefined) return 'Server default';
  return days === null ? 'Server default (for ever)' : `Server default (${daysText(days)})`;
}

/** How long the room keeps its messages (owners and admins): its own period or the server's. */
function RetentionSelect({ room }: { room: RoomEntry }) {
  const chat = useChat();
  const serverDays = useApp((s) => s.server?.retention_days);
  const [busy, setBusy] = useState(false);
  const current = room.retention_days ?? null;
  const choices = current === null || RETENTION_CHOICES.includes(current) ? RETENTION_CHOICES : [...RETENTION_CHOICES, current].sort((a, b) => a - b);
  return (
    <label class="level-select" title="Messages older than this disappear for everyone, from history and search">
      <span class="muted small">Keep</span>
      <select
        data-testid="retention"
        value={current === null ? '' : String(current)}
        disabled={busy}
        aria-label="Keep messages for"
        onChange={async (e) => {
          const select = e.currentTarget;
          const days = select.value === '' ? null : Number(select.value);
          setBusy(true);
          try {
            await chat.setRetention(room.room_id, days);
          } catch (err) {
            select.value = current === null ? '' : String(current);
            chat.toast(`Could not change how long messages are kept: ${errorText(err)}`);
          } finally {
            setBusy(false);
          }
        }}
      >
        <option value="">{serverDefaultLabel(serverDays)}</option>
        {choices.map((d) => (
          <option key={d} value={String(d)}>
            {daysText(d)}
          </option>
        ))}
      </select>
    </label>
  );
}

/**
 * How long the room keeps its messages, to members who may not change it: its own period, else
 * the server's default; nothing when messages are kept for ever (or that is not known yet).
 */
function RetentionNote({ room }: { room: RoomEntry }) {
  const serverDays = useApp((s) => s.server?.retention_days ?? null);
  const own = typeof room.retention_days === 'number' ? room.retention_days : null;
  const days = own ?? serverDays;
  if (days === null) return null;
  const why = own === null ? "the server's default" : "this room's own period";
  return (
    <span class="muted small" data-testid="retention-note" title={`Messages older than this disappear for everyone, from history and search (${why})`}>
      Messages kept {daysText(days)}
    </span>
  );
}

/** The caller's notification level in the room: when they are told of its messages. */
function NotificationLevelSelect({ room }: { room: RoomEntry }) {
  const chat = useChat();
  const [busy, setBusy] = useState(false);
  const direct = room.kind === 'direct';
  return (
    <label class="level-select" title="When you are notified of this room's messages while not looking at it">
      <span class="muted small">Notify</span>
      <select
        data-testid="notification-level"
        value={room.notifications}
        disabled={busy}
        aria-label="Notify me of"
        onChange={async (e) => {
          const level = e.currentTarget.value as NotificationLevel;
          const select = e.currentTarget;
          setBusy(true);
          try {
            await chat.setNotificationLevel(room.room_id, level);
          } catch (err) {
            select.value = room.notifications;
            chat.toast(`Could not change notifications: ${errorText(err)}`);
          } finally {
            setBusy(false);
          }
        }}
      >
        {NOTIFICATION_LEVELS.map((l) => (
          <option key={l} value={l}>
            {l === 'mentions' && direct ? 'Mentions and direct messages' : LEVEL_LABELS[l]}
          </option>
        ))}
      </select>
    </label>
  );
}

const INVITE_ERRORS: Record<string, string> = {
  user_not_found: 'No user has that username.',
  already_member: 'They are already a member.',
  already_invited: 'They are already invited.',
  forbidden: 'Only owners and admins can invite to a private room.',
};

function RoomHeader({ room, membersOpen, toggleMembers }: { room: RoomEntry; membersOpen: boolean; toggleMembers: () => void }) {
  const chat = useChat();
  const presence = useApp((s) => (room.other_user ? s.presence[room.other_user.user_id] : undefined));
  const [invite, setInvite] = useState('');
  const [note, setNote] = useState<string | null>(null);
  const { busy, error, setError, run } = useBusy();
  const group = room.kind !== 'direct';
  const canInvite = group && (room.visibility === 'public' || room.role === 'owner' || room.role === 'admin');

  const submitInvite = (e: Event) => {
    e.preventDefault();
    const name = invite.trim();
    if (!name || busy) return;
    setNote(null);
    void run(async () => {
      const u = await chat.inviteUser(room.room_id, name);
      setNote(`Invited ${u.display_name || u.username}.`);
      setInvite('');
    }, INVITE_ERRORS);
  };

  const leave = async () => {
    setError(null);
    try {
      await chat.leaveRoom(room.room_id);
      navigate(null);
    } catch (err) {
      setError(errorText(err, { owner_cannot_leave: 'The owner cannot leave the room.' }));
    }
  };

  return (
    <header class="room-header">
      <div class="room-title-row">
        <a href="#/" class="back icon-button" aria-label="Back to rooms">
          <BackIcon />
        </a>
        <div class="room-title-text">
          <h1 id="room-title" data-testid="room-title">
            {group ? (room.visibility === 'private' ? '🔒 ' : '# ') : ''}
            {roomLabel(room)}
            {!group && room.other_user && room.other_user.display_name !== room.other_user.username && (
              <span class="msg-handle"> @{room.other_user.username}</span>
            )}
            {!group && presence && (
              <span class={`presence-dot ${presence}`} title={presence}>
                <span class="sr-only">{presence}</span>
              </span>
            )}
          </h1>
          {group && room.topic && <p class="room-topic muted">{room.topic}</p>}
        </div>
      </div>
      <div class="room-tools">
        <button type="button" data-testid="members-button" aria-expanded={membersOpen} onClick={toggleMembers}>
          Members <span class="muted">{room.member_count}</span>
        </button>
        <NotificationLevelSelect room={room} />
        {group && (room.role === 'owner' || room.role === 'admin') ? (
          <RetentionSelect room={room} />
        ) : (
          <RetentionNote room={room} />
        )}
        {canInvite && (
          <form class="invite-form" onSubmit={submitInvite}>
            <label class="sr-only" for="invite-username">
              Invite by username
            </label>
            <input
              id="invite-username"
              data-testid="invite-username"
              placeholder="Invite username"
              autoCapitalize="none"
              spellcheck={false}
              value={invite}
              onInput={(e) => setInvite(e.currentTarget.value)}
            />
            <button type="submit" data-testid="invite-submit" disabled={busy}>
              Invite
            </button>
          </form>
        )}
        <button
          type="button"
          class="danger-text"
          data-testid="leave-room"
          disabled={group && room.role === 'owner'}
          title={group && room.role === 'owner' ? 'The owner cannot leave the room' : undefined}
          onClick={() => void leave()}
        >
          Leave
        </button>
      </div>
      {note && (
        <p class="note small" role="status">
          {note}
        </p>
      )}
      <FormError error={error} />
    </header>
  );
}

function MembersPanel({ room, onClose }: { room: RoomEntry; onClose: () => void }) {
  const chat = useChat();
  const members = useApp((s) => s.members[room.room_id]);
  const presence = useApp((s) => s.presence);
  const me = useApp((s) => s.session?.userId ?? '');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    void chat.loadMembers(room.room_id).then(() => chat.loadMemberPresence(room.room_id));
  }, [room.room_id]);
  const canKick = (m: Member) => {
    if (room.kind === 'direct' || m.user_id === me || m.role === 'owner') return false;
    if (room.role === 'owner') return true;
    return room.role === 'admin' && m.role === 'member';
  };
  // Only the owner gives or takes the admin role (never their own, never in a direct room).
  const canChangeRole = (m: Member) => room.kind !== 'direct' && room.role === 'owner' && m.user_id !== me && m.role !== 'owner';
  const sorted = members ? [...members].sort((a, b) => rank(a.role) - rank(b.role) || (a.username ?? '').localeCompare(b.username ?? '')) : null;
  return (
    <aside
      class="members-panel"
      aria-label="Members"
      onKeyDown={(e) => {
        if (e.key === 'Escape') onClose();
      }}
    >
      <div class="panel-head">
        <h2>Members</h2>
        <CloseButton label="Close members" onClick={onClose} />
      </div>
      <FormError error={error} />
      {!sorted && <p class="muted">Loading…</p>}
      <ul>
        {sorted?.map((m) => (
          <li key={m.user_id} class="member-item" data-testid="member-item" data-user-id={m.user_id} data-username={m.username ?? ''}>
            <span class={`presence-dot ${presence[m.user_id] ?? 'unknown'}`} aria-hidden="true" />
            <Avatar url={m.avatar_url} name={m.display_name || m.username || '?'} small />
            <span class="member-name">
              {m.display_name || m.username || 'Unknown'}
              {m.user_id === me && <span class="muted"> (you)</span>}
              <span class="muted small"> @{m.username}</span>
            </span>
            {m.role !== 'member' && <span class="role small">{m.role}</span>}
            {canChangeRole(m) && (
              <button
                type="button"
                class="small"
                data-testid="role-toggle"
                aria-label={m.role === 'admin' ? `Make ${m.username ?? 'this admin'} a member` : `Make ${m.username ?? 'this member'} an admin`}
                onClick={async () => {
                  setError(null);
                  try {
                    await chat.changeRole(room.room_id, m.user_id, m.role === 'admin' ? 'member' : 'admin');
                  } catch (e) {
                    setError(errorText(e));
                  }
                }}
              >
                {m.role === 'admin' ? 'Make member' : 'Make admin'}
              </button>
            )}
            {canKick(m) && (
              <button
                type="button"
                class="small danger-text"
                data-testid="kick-member"
                aria-label={`Remove ${m.username ?? 'member'} from the room`}
                onClick={async () => {
                  setError(null);
                  try {
                    await chat.kick(room.room_id, m.user_id);
                  } catch (e) {
                    setError(errorText(e));
                  }
                }}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
    </aside>
  );
}

function rank(role: string): number {
  return role === 'owner' ? 0 : role === 'admin' ? 1 : 2;
}

function TypingIndicator({ roomId }: { roomId: string }) {
  const chat = useChat();
  const typing = useApp((s) => s.typing[roomId]);
  const now = Date.now();
  const users = useApp((s) => s.users);
  const names = typing
    ? Object.entries(typing)
        .filter(([, until]) => until > now)
        .map(([u]) => {
          const info = users[u];
          return info && info.display_name && info.display_name !== info.username ? `${info.display_name} (@${info.username})` : chat.userName(u);
        })
    : [];
  if (names.length === 0) return <div class="typing-slot" aria-hidden="true" />;
  const text =
    names.length === 1
      ? `${names[0]} is typing…`
      : names.length === 2
        ? `${names[0]} and ${names[1]} are typing…`
        : `${names.length} people are typing…`;
  return (
    <div class="typing-slot typing" data-testid="typing-indicator" role="status" aria-live="polite">
      {text}
    </div>
  );
}

function Composer({
  roomId,
  textareaRef,
  replyTo,
  cancelReply,
  editLast,
}: {
  roomId: string;
  textareaRef: { current: HTMLTextAreaElement | null };
  replyTo: TlMessage | null;
  cancelReply: () => void;
  editLast: () => boolean;
}) {
  const chat = useChat();
  const [text, setText] = useState(() => drafts.get(roomId) ?? '');
  const [vanishing, setVanishing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const users = useApp((s) => s.users);
  const replyInTimeline = useApp((s) => (replyTo ? findById(s.timelines[roomId]?.tl ?? { messages: [], pending: [] }, replyTo.message_id) : undefined));
  const reply = replyInTimeline ?? replyTo;
  useEffect(() => {
    drafts.set(roomId, text);
  }, [text, roomId]);
  useEffect(() => {
    if (window.matchMedia?.('(pointer: fine)').matches) textareaRef.current?.focus();
  }, [roomId]);

  const fileInput = useRef<HTMLInputElement>(null);
  const [uploading, setUploading] = useState(false);
  const attach = async (files: File[]) => {
    if (!files.length || uploading) return;
    setUploading(true);
    const sent = await chat.sendFiles(roomId, files, text, reply && !reply.deleted ? reply.message_id : null);
    setUploading(false);
    if (sent) {
      setText('');
      cancelReply();
    }
  };

  const maxChars = useApp((s) => s.server?.limits.message_chars ?? MESSAGE_CHARS);
  const chars = useMemo(() => trimmedChars(text), [text]);
  const tooLong = chars > maxChars;
  const submit = () => {
    const body = text.trim();
    if (!body || tooLong) return;
    setError(null);
    if (vanishing) {
      chat.sendEphemeral(roomId, body).catch((e) => setError(`Not sent: ${errorText(e)}`));
    } else {
      chat.send(roomId, body, reply && !reply.deleted ? reply.message_id : null);
      cancelReply();
    }
    setText('');
  };

  return (
    <form
      class={`composer${vanishing ? ' vanishing' : ''}`}
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      {reply && !vanishing && (
        <div class="reply-preview" data-testid="reply-preview">
          <span class="small">
            Replying to <strong>{users[reply.sender_id]?.display_name || users[reply.sender_id]?.username || 'message'}</strong>:{' '}
            <span class="muted">{reply.deleted ? 'Message deleted' : (reply.body ?? '').slice(0, 120)}</span>
          </span>
          <CloseButton class="small" testid="reply-cancel" label="Cancel reply" onClick={cancelReply} />
        </div>
      )}
      <FormError error={error} />
      <div class="composer-row">
        <label class="sr-only" for={`composer-${roomId}`}>
          Message
        </label>
        <textarea
          id={`composer-${roomId}`}
          ref={textareaRef}
          data-testid="composer"
          rows={1}
          placeholder={vanishing ? 'Vanishing message (not saved)' : 'Write a message'}
          value={text}
          onInput={(e) => {
            setText(e.currentTarget.value);
            if (e.currentTarget.value.trim()) chat.typing(roomId);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              submit();
            } else if (e.key === 'ArrowUp' && !text && !e.shiftKey && !e.altKey) {
              if (editLast()) e.preventDefault();
            } else if (e.key === 'Escape' && reply) {
              e.preventDefault();
              cancelReply();
            }
          }}
        />
        {!vanishing && (
          <>
            <input
              ref={fileInput}
              type="file"
              multiple
              class="sr-only"
              data-testid="composer-file"
              aria-label="Attach files"
              onChange={(e) => {
                const files = Array.from(e.currentTarget.files ?? []);
                e.currentTarget.value = '';
                void attach(files);
              }}
            />
            <button
              type="button"
              class="icon-button"
              data-testid="composer-attach"
              aria-label="Attach files"
              title="Attach files (sent with what you wrote)"
              disabled={uploading}
              onClick={() => fileInput.current?.click()}
            >
              {uploading ? '…' : '📎'}
            </button>
          </>
        )}
        <label class="vanish-toggle" title="Vanishing: shown live to who is here, never saved">
          <input
            type="checkbox"
            data-testid="composer-ephemeral"
            checked={vanishing}
            onChange={(e) => setVanishing(e.currentTarget.checked)}
          />
          <span>Vanishing</span>
        </label>
        <button type="submit" class="primary" data-testid="composer-send" disabled={!text.trim() || tooLong}>
          Send
        </button>
      </div>
      <CharCount chars={chars} max={maxChars} testid="composer-count" />
    </form>
  );
}
