import { useState } from 'preact/hooks';
import { roomLabel, totalMentions } from '../state/rooms';
import { Avatar } from './Avatar';
import { useApp, useChat } from './context';
import { AtIcon, BellIcon, BellOffIcon, SearchIcon, SettingsIcon } from './icons';
import { SettingsDialog } from './Settings';

export function Header() {
  const chat = useChat();
  const me = useApp((s) => s.me);
  const session = useApp((s) => s.session);
  const notifications = useApp((s) => s.notifications);
  const search = useApp((s) => s.search);
  const rooms = useApp((s) => s.rooms);
  const mentionsOpen = useApp((s) => s.mentions.open);
  const mentionCount = useApp((s) => totalMentions(s.rooms));
  const [settings, setSettings] = useState(false);

  const bellLabel =
    notifications === 'granted'
      ? 'Notifications are on'
      : notifications === 'denied'
        ? 'Notifications are blocked in this browser'
        : notifications === 'unsupported'
          ? 'Notifications are not supported here'
          : 'Turn on notifications';

  return (
    <header class="topbar">
      <div class="brand" aria-hidden="true">
        chat
      </div>
      <form
        class="search-form"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          void chat.runSearch(false);
        }}
      >
        <label class="sr-only" for="search-input">
          Search messages
        </label>
        <input
          id="search-input"
          data-testid="search-input"
          type="search"
          placeholder="Search messages"
          value={search.q}
          onInput={(e) => chat.setSearch({ q: e.currentTarget.value })}
          onKeyDown={(e) => {
            if (e.key === 'Escape') chat.setSearch({ open: false });
          }}
        />
        <label class="sr-only" for="search-room-filter">
          Room
        </label>
        <select
          id="search-room-filter"
          data-testid="search-room-filter"
          value={search.roomId}
          onChange={(e) => chat.setSearch({ roomId: e.currentTarget.value })}
        >
          <option value="">All rooms</option>
          {rooms.order.map((id) => (
            <option key={id} value={id}>
              {roomLabel(rooms.byId[id]!)}
            </option>
          ))}
        </select>
        <label class="sr-only" for="search-sort">
          Sort
        </label>
        <select
          id="search-sort"
          data-testid="search-sort"
          value={search.sort}
          onChange={(e) => chat.setSearch({ sort: e.currentTarget.value as 'relevance' | 'recent' })}
        >
          <option value="relevance">Best match</option>
          <option value="recent">Newest</option>
        </select>
        <button type="submit" class="icon-button" aria-label="Search">
          <SearchIcon />
        </button>
      </form>
      <div class="me-area">
        <button
          type="button"
          class="icon-button with-count"
          data-testid="mentions-button"
          aria-label={mentionCount > 0 ? `Mentions, ${mentionCount} unread` : 'Mentions'}
          title="Mentions"
          aria-pressed={mentionsOpen}
          onClick={() => (mentionsOpen ? chat.closeMentions() : chat.openMentions())}
        >
          <AtIcon />
          {mentionCount > 0 && (
            <span class="count-dot" aria-hidden="true">
              {mentionCount > 99 ? '99+' : mentionCount}
            </span>
          )}
        </button>
        <button
          type="button"
          class="icon-button"
          data-testid="notifications-enable"
          aria-label={bellLabel}
          title={bellLabel}
          aria-pressed={notifications === 'granted'}
          disabled={notifications === 'unsupported'}
          onClick={() => void chat.enableNotifications()}
        >
          {notifications === 'granted' ? <BellIcon /> : <BellOffIcon />}
        </button>
        <span class="me" data-testid="me" title={me ? `Signed in as ${me.username}` : undefined}>
          {me ? (
            <>
              {me.avatar_url && <Avatar url={me.avatar_url} name={me.display_name} small />}
              <span class="me-name">{me.display_name}</span> <span class="muted">@{me.username}</span>
            </>
          ) : (
            <span class="muted">{session ? '…' : ''}</span>
          )}
        </span>
        <button
          type="button"
          class="icon-button"
          data-testid="settings-button"
          aria-label="Settings"
          title="Settings"
          onClick={() => setSettings(true)}
        >
          <SettingsIcon />
        </button>
        <button type="button" data-testid="logout" onClick={() => chat.logout()}>
          Log out
        </button>
      </div>
      {settings && <SettingsDialog onClose={() => setSettings(false)} />}
    </header>
  );
}

export function OfflineBanner() {
  const conn = useApp((s) => s.conn);
  const lost = useApp((s) => s.connLost);
  const online = useApp((s) => s.online);
  // Not while the first connection is being made: only once one failed or was lost.
  const disconnected = conn !== 'open' && (lost || !online);
  if (!disconnected) return null;
  return (
    <div class="offline-banner" role="status" data-testid="offline-banner">
      {online ? 'Connection lost. Reconnecting…' : 'You are offline. Reconnecting when the network is back…'}
    </div>
  );
}
