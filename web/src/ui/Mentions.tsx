import { useEffect, useRef } from 'preact/hooks';
import type { Mention } from '../types';
import { useApp, useChat } from './context';
import { FormError } from './forms';
import { CloseButton } from './icons';
import { dateTimeLabel, Mentioned } from './text';

function roomName(m: Mention): string {
  if (m.room_kind === 'direct') return 'Direct message';
  return `# ${m.room_name || 'Untitled room'}`;
}

/** The messages that mention the reader, newest first, a page at a time (`GET /v1/mentions`). */
export function MentionsPanel() {
  const chat = useChat();
  const st = useApp((s) => s.mentions);
  const myUsername = useApp((s) => s.me?.username ?? null);
  useApp((s) => s.users);
  const ref = useRef<HTMLElement>(null);
  useEffect(() => {
    if (st.open) ref.current?.focus();
  }, [st.open]);
  if (!st.open) return null;
  return (
    <section
      class="search-panel mentions-panel"
      data-testid="mentions-panel"
      aria-label="Mentions"
      tabIndex={-1}
      ref={ref}
      onKeyDown={(e) => {
        if (e.key === 'Escape') chat.closeMentions();
      }}
    >
      <div class="panel-head">
        <h2>Mentions</h2>
        <CloseButton label="Close mentions" onClick={() => chat.closeMentions()} />
      </div>
      <FormError error={st.error} />
      <ul class="search-results" data-testid="mention-results" aria-busy={st.loading}>
        {st.items.map((m) => (
          <li key={m.message_id}>
            <button
              type="button"
              class="search-result"
              data-testid="mention-result"
              data-room-id={m.room_id}
              data-message-id={m.message_id}
              data-seq={m.seq}
              onClick={() => chat.openMention(m)}
            >
              <span class="search-meta small">
                <span class="room-name">{roomName(m)}</span>
                <span class="muted">
                  {' · '}
                  {m.sender_display_name || m.sender_username || chat.userName(m.sender_id)} · {dateTimeLabel(m.sent_at)}
                  {m.room_mention ? ' · @room' : ''}
                </span>
              </span>
              <span class="snippet">
                <Mentioned text={m.body.length > 300 ? `${m.body.slice(0, 300)}…` : m.body} me={myUsername} />
              </span>
            </button>
          </li>
        ))}
      </ul>
      {st.loading && (
        <p class="muted" role="status">
          Loading…
        </p>
      )}
      {st.loaded && !st.loading && !st.error && st.items.length === 0 && <p class="muted">Nobody has mentioned you yet.</p>}
      {st.nextBefore !== null && !st.loading && (
        <button type="button" data-testid="mentions-more" onClick={() => void chat.loadMentions(true)}>
          Load more
        </button>
      )}
    </section>
  );
}
