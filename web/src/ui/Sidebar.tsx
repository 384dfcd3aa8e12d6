import { memo } from './memo';
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from '../api';
import { navigate } from '../chat';
import { roomKey, roomLabel, type RoomEntry } from '../state/rooms';
import type { PublicRoom } from '../types';
import { Avatar } from './Avatar';
import { useApp, useChat } from './context';
import { FormError, FormFooter, useBusy } from './forms';
import { Modal } from './Modal';

type DialogKind = 'new-room' | 'browse' | 'dm' | null;

export function Sidebar() {
  const [dialog, setDialog] = useState<DialogKind>(null);
  const close = () => setDialog(null);
  return (
    <nav class="sidebar" aria-label="Rooms">
      <div class="sidebar-actions">
        <button type="button" data-testid="new-room-button" onClick={() => setDialog('new-room')}>
          New room
        </button>
        <button type="button" data-testid="browse-rooms-button" onClick={() => setDialog('browse')}>
          Browse
        </button>
        <button type="button" data-testid="new-dm-button" onClick={() => setDialog('dm')}>
          Message…
        </button>
      </div>
      <Invites />
      <RoomList />
      {dialog === 'new-room' && <NewRoomDialog onClose={close} />}
      {dialog === 'browse' && <BrowseDialog onClose={close} />}
      {dialog === 'dm' && <DirectDialog onClose={close} />}
    </nav>
  );
}

function Invites() {
  const chat = useChat();
  const invites = useApp((s) => s.invites);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!invites || invites.length === 0) return null;
  return (
    <section class="invites" aria-labelledby="invites-title">
      <h2 id="invites-title" class="section-title">
        Invitations
      </h2>
      <FormError error={error} />
      <ul>
        {invites.map((inv) => (
          <li key={inv.room_id} class="invite-item" data-testid="invite-item" data-room-id={inv.room_id} data-room-name={inv.name}>
            <div class="invite-text">
              <span class="room-name">{inv.name}</span>
              {inv.topic && <span class="muted small">{inv.topic}</span>}
            </div>
            <button
              type="button"
              class="primary small"
              data-testid="invite-accept"
              disabled={busy === inv.room_id}
              onClick={async () => {
                setBusy(inv.room_id);
                setError(null);
                try {
                  await chat.joinRoom(inv.room_id);
                  navigate(inv.room_id);
                } catch (e) {
                  setError(errorText(e));
                } finally {
                  setBusy(null);
                }
              }}
            >
              Accept
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function RoomList() {
  const rooms = useApp((s) => s.rooms);
  const active = useApp((s) => s.active);
  const presence = useApp((s) => s.presence);
  const loaded = useApp((s) => s.roomsLoaded);
  const users = useApp((s) => s.users);
  return (
    <div class="room-list-wrap">
      <h2 class="section-title">Rooms</h2>
      <ul class="room-list" data-testid="room-list">
        {rooms.order.length === 0 && (
          <li class="muted empty">{loaded ? 'No rooms yet. Create one or browse public rooms.' : 'Loading…'}</li>
        )}
        {rooms.order.map((id) => {
          const r = rooms.byId[id]!;
          const status = r.other_user ? (presence[r.other_user.user_id] ?? 'offline') : undefined;
          const sender = r.last_message && r.kind !== 'direct' ? users[r.last_message.sender_id] : undefined;
          const lastAuthor = sender ? sender.display_name || sender.username : '';
          return <RoomItem key={id} room={r} active={active === id} status={status} lastAuthor={lastAuthor} />;
        })}
      </ul>
    </div>
  );
}

const RoomItem = memo(function RoomItem({
  room,
  active,
  status,
  lastAuthor,
}: {
  room: RoomEntry;
  active: boolean;
  status?: string;
  lastAuthor: string;
}) {
  const label = roomLabel(room);
  const last = room.last_message;
  const lastText = last ? (last.deleted ? 'Message deleted' : (last.body ?? '')) : room.topic || 'No messages yet';
  return (
    <li>
      <a
        href={`#/rooms/${encodeURIComponent(room.room_id)}`}
        class={`room-item${active ? ' active' : ''}${room.unread_count > 0 ? ' unread' : ''}`}
        data-testid="room-item"
        data-room-id={room.room_id}
        data-room-name={roomKey(room)}
        aria-current={active ? 'page' : undefined}
      >
        <span class="room-avatar" aria-hidden="true">
          {room.kind === 'direct' && room.other_user?.avatar_url ? (
            <Avatar url={room.other_user.avatar_url} name={label} />
          ) : room.kind === 'direct' ? (
            '@'
          ) : room.visibility === 'private' ? (
            '🔒'
          ) : (
            '#'
          )}
        </span>
        <span class="room-text">
          <span class="room-name-line">
            <span class="room-name">{label}</span>
            {status && (
              <span class={`presence-dot ${status}`} data-testid="presence-dot" data-status={status} title={status}>
                <span class="sr-only">{status}</span>
              </span>
            )}
          </span>
          <span class="room-last-message" data-testid="room-last-message">
            {last && lastAuthor ? `${lastAuthor}: ` : ''}
            {lastText}
          </span>
        </span>
        {room.unread_mentions > 0 && (
          <span
            class="badge mention-badge"
            data-testid="room-mentions"
            aria-label={`${room.unread_mentions} unread mention${room.unread_mentions === 1 ? '' : 's'}`}
          >
            @{room.unread_mentions}
          </span>
        )}
        {room.unread_count > 0 && (
          <span class="badge" data-testid="room-unread" aria-label={`${room.unread_count} unread`}>
            {room.unread_count}
          </span>
        )}
      </a>
    </li>
  );
});

function NewRoomDialog({ onClose }: { onClose: () => void }) {
  const chat = useChat();
  const [name, setName] = useState('');
  const [topic, setTopic] = useState('');
  const [visibility, setVisibility] = useState<'public' | 'private'>('public');
  const { busy, error, run } = useBusy();
  return (
    <Modal title="New room" onClose={onClose}>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            const id = await chat.createRoom(name.trim(), topic.trim(), visibility);
            onClose();
            navigate(id);
          });
        }}
      >
        <label>
          Name
          <input data-testid="new-room-name" required maxLength={80} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Topic <span class="muted">(optional)</span>
          <input data-testid="new-room-topic" maxLength={1024} value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
        </label>
        <label>
          Who can join
          <select
            data-testid="new-room-visibility"
            value={visibility}
            onChange={(e) => setVisibility(e.currentTarget.value as 'public' | 'private')}
          >
            <option value="public">Public: anyone can find and join it</option>
            <option value="private">Private: by invitation only</option>
          </select>
        </label>
        <FormFooter error={error} busy={busy} onCancel={onClose} submit="Create" submitTestid="new-room-submit" />
      </form>
    </Modal>
  );
}

function BrowseDialog({ onClose }: { onClose: () => void }) {
  const chat = useChat();
  const [q, setQ] = useState('');
  const [rooms, setRooms] = useState<PublicRoom[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const { busy, error, run } = useBusy();
  const ctl = useRef<AbortController | null>(null);
  useEffect(() => {
    const t = setTimeout(() => {
      ctl.current?.abort();
      const c = new AbortController();
      ctl.current = c;
      chat.api
        .publicRooms(q.trim(), c.signal)
        .then((r) => {
          setRooms(r);
          setLoadError(null);
        })
        .catch((e) => {
          if ((e as Error)?.name !== 'AbortError') setLoadError(errorText(e));
        });
    }, q ? 250 : 0);
    return () => clearTimeout(t);
  }, [q]);
  useEffect(() => () => ctl.current?.abort(), []);
  return (
    <Modal title="Public rooms" onClose={onClose}>
      <div class="stack">
        <label>
          Find a room
          <input
            data-testid="public-room-search"
            type="search"
            placeholder="Room name"
            value={q}
            onInput={(e) => setQ(e.currentTarget.value)}
          />
        </label>
        <FormError error={error || loadError} />
        {rooms && rooms.length === 0 && <p class="muted">No public room matches.</p>}
        <ul class="public-rooms">
          {rooms?.map((r) => (
            <li key={r.room_id} class="public-room-item" data-testid="public-room-item" data-room-id={r.room_id} data-room-name={r.name}>
              <div class="invite-text">
                <span class="room-name"># {r.name}</span>
                <span class="muted small">
                  {r.member_count} member{r.member_count === 1 ? '' : 's'}
                  {r.topic ? ` · ${r.topic}` : ''}
                </span>
              </div>
              <button
                type="button"
                class={r.joined ? 'small' : 'primary small'}
                data-testid="public-room-join"
                disabled={busy}
                onClick={() =>
                  void run(async () => {
                    // Already a member: just open it (a join would be a 409).
                    if (!r.joined || !chat.state.rooms.byId[r.room_id]) await chat.joinRoom(r.room_id);
                    onClose();
                    navigate(r.room_id);
                  })
                }
              >
                {r.joined ? 'Open' : 'Join'}
              </button>
            </li>
          ))}
        </ul>
      </div>
    </Modal>
  );
}

function DirectDialog({ onClose }: { onClose: () => void }) {
  const chat = useChat();
  const [username, setUsername] = useState('');
  const { busy, error, run } = useBusy();
  return (
    <Modal title="Direct message" onClose={onClose}>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void run(
            async () => {
              const id = await chat.openDirect(username);
              onClose();
              navigate(id);
            },
            {
              user_not_found: 'No user has that username.',
              direct_with_self: 'That is you: pick someone else.',
              invalid_query: 'Enter a username.',
            },
          );
        }}
      >
        <label>
          Username
          <input
            data-testid="dm-username"
            autoCapitalize="none"
            spellcheck={false}
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <FormFooter error={error} busy={busy} onCancel={onClose} submit="Open" submitTestid="dm-submit" />
      </form>
    </Modal>
  );
}
