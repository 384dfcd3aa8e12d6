import { CloseButton } from './icons';
import { useEffect } from 'preact/hooks';
import type { Chat } from '../chat';
import { totalUnread } from '../state/rooms';
import { AuthScreen } from './Auth';
import { ChatContext, useApp, useChat } from './context';
import { Header, OfflineBanner } from './Header';
import { MentionsPanel } from './Mentions';
import { RoomView } from './RoomView';
import { SearchPanel } from './Search';
import { Sidebar } from './Sidebar';

export function App({ chat }: { chat: Chat }) {
  return (
    <ChatContext.Provider value={chat}>
      <Root />
    </ChatContext.Provider>
  );
}

function Root() {
  const session = useApp((s) => s.session);
  if (!session) return <AuthScreen />;
  return <Shell />;
}

function Shell() {
  const active = useApp((s) => s.active);
  const searchOpen = useApp((s) => s.search.open || s.mentions.open);
  const unread = useApp((s) => totalUnread(s.rooms));
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) chat` : 'chat';
  }, [unread]);
  return (
    <div class={`shell${active ? ' has-room' : ''}${searchOpen ? ' has-search' : ''}`}>
      <a class="skip-link" href="#main">
        Skip to messages
      </a>
      <Header />
      <OfflineBanner />
      <div class="layout">
        <Sidebar />
        <main class="main" id="main">
          <SearchPanel />
          <MentionsPanel />
          {active ? <RoomView key={active} roomId={active} /> : <NoRoom />}
        </main>
      </div>
      <Toasts />
    </div>
  );
}

function NoRoom() {
  return (
    <section class="no-room center">
      <p class="muted">Pick a room, or start one.</p>
    </section>
  );
}

function Toasts() {
  const chat = useChat();
  const toasts = useApp((s) => s.toasts);
  if (toasts.length === 0) return null;
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} class="toast">
          <span>{t.text}</span>
          <CloseButton class="small" label="Dismiss" onClick={() => chat.dismissToast(t.id)} />
        </div>
      ))}
    </div>
  );
}
