import { CloseButton } from './icons';
import { useEffect, useRef } from 'preact/hooks';
import { roomLabel } from '../state/rooms';
import { useApp, useChat } from './context';
import { FormError } from './forms';
import { dateTimeLabel } from './text';

export function SearchPanel() {
  const chat = useChat();
  const search = useApp((s) => s.search);
  const rooms = useApp((s) => s.rooms);
  useApp((s) => s.users);
  const ref = useRef<HTMLElement>(null);
  useEffect(() => {
    if (search.open) ref.current?.focus();
  }, [search.open]);
  if (!search.open) return null;
  return (
    <section
      class="search-panel"
      aria-label="Search results"
      tabIndex={-1}
      ref={ref}
      onKeyDown={(e) => {
        if (e.key === 'Escape') chat.setSearch({ open: false });
      }}
    >
      <div class="panel-head">
        <h2>Results{search.q ? ` for “${search.q}”` : ''}</h2>
        <CloseButton label="Close search" onClick={() => chat.setSearch({ open: false })} />
      </div>
      <FormError error={search.error} />
      <ul class="search-results" data-testid="search-results" aria-busy={search.loading}>
        {search.hits.map((h) => {
          const room = rooms.byId[h.room_id];
          return (
            <li key={`${h.message_id}`}>
              <button
                type="button"
                class="search-result"
                data-testid="search-result"
                data-room-id={h.room_id}
                data-seq={h.seq}
                onClick={() => {
                  chat.setSearch({ open: false });
                  void chat.jumpTo(h.room_id, h.seq);
                }}
              >
                <span class="search-meta small">
                  <span class="room-name">{room ? roomLabel(room) : 'Room'}</span>
                  <span class="muted">
                    {' · '}
                    {chat.userName(h.sender_id)} · {dateTimeLabel(h.sent_at)}
                  </span>
                </span>
                <span class="snippet">
                  {h.snippet.map((seg, i) => (seg.highlight ? <mark key={i}>{seg.text}</mark> : seg.text))}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {search.loading && (
        <p class="muted" role="status">
          Searching…
        </p>
      )}
      {!search.loading && !search.error && search.hits.length === 0 && <p class="muted">No messages match.</p>}
      {search.cursor && !search.loading && (
        <button type="button" data-testid="search-more" onClick={() => void chat.runSearch(true)}>
          More results
        </button>
      )}
    </section>
  );
}
