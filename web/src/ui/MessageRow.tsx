import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { errorText } from '../api';
import type { EphemeralItem } from '../chat';
import type { PendingMessage, TlMessage } from '../state/timeline';
import type { Message } from '../types';
import { Avatar } from './Avatar';
import { Attachments } from './Attachments';
import { trimmedChars, CharCount, MESSAGE_CHARS } from './charLimit';
import { FormError } from './forms';
import { EditIcon, ReplyIcon, SmileIcon, TrashIcon } from './icons';
import { memo } from './memo';
import { dateTimeLabel, Linkified, timeLabel } from './text';

export const EMOJIS = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];

/** What a row can ask for; one stable object per room view (rows are memoised). */
export interface RowActions {
  edit(msg: TlMessage, body: string): Promise<void>;
  startEdit(seq: number | null): void;
  remove(msg: TlMessage): void;
  react(msg: TlMessage, emoji: string): void;
  reply(msg: TlMessage): void;
  retry(clientMsgId: string): void;
  discard(clientMsgId: string): void;
  jumpTo(seq: number): void;
  requestQuote(messageId: string): void;
}

export interface QuoteInfo {
  /** The original, or 'missing' when it cannot be shown. */
  msg: Message | 'missing' | undefined;
  author: string;
}

function quoteText(m: Message): string {
  if (m.deleted || m.body === null) return 'Message deleted';
  return m.body.length > 140 ? `${m.body.slice(0, 140)}…` : m.body;
}

export function Quote({ quote, replyTo, actions }: { quote: QuoteInfo; replyTo: string; actions: RowActions }) {
  useEffect(() => {
    if (quote.msg === undefined) actions.requestQuote(replyTo);
  }, [quote.msg === undefined, replyTo]);
  const m = quote.msg;
  if (m === undefined || m === 'missing') {
    return (
      <div class="quote muted" data-testid="message-reply-quote">
        <span aria-hidden="true">↪ </span>
        {m === 'missing' ? 'Original message unavailable' : 'Loading original…'}
      </div>
    );
  }
  return (
    <button type="button" class="quote" data-testid="message-reply-quote" onClick={() => actions.jumpTo(m.seq)} title="Show the original">
      <span aria-hidden="true">↪ </span>
      <span class="quote-author">{quote.author}</span> <span class="quote-body">{quoteText(m)}</span>
    </button>
  );
}

function EditBox({ msg, actions, maxChars }: { msg: TlMessage; actions: RowActions; maxChars: number }) {
  const [value, setValue] = useState(msg.body ?? '');
  const chars = trimmedChars(value);
  const tooLong = chars > maxChars;
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  useLayoutEffect(() => {
    const t = ref.current;
    if (t) {
      t.focus();
      t.setSelectionRange(t.value.length, t.value.length);
    }
  }, []);
  const save = async () => {
    const body = value.trim();
    if (!body || body === msg.body) {
      actions.startEdit(null);
      return;
    }
    if (tooLong) return;
    setBusy(true);
    setError(null);
    try {
      await actions.edit(msg, body);
      actions.startEdit(null);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  return (
    <div class="edit-box">
      <label class="sr-only" for={`edit-${msg.seq}`}>
        Edit message
      </label>
      <textarea
        id={`edit-${msg.seq}`}
        ref={ref}
        data-testid="edit-input"
        value={value}
        disabled={busy}
        onInput={(e) => setValue(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void save();
          } else if (e.key === 'Escape') {
            e.preventDefault();
            e.stopPropagation();
            actions.startEdit(null);
          }
        }}
      />
      <FormError error={error} />
      <CharCount chars={chars} max={maxChars} testid="edit-count" />
      <div class="edit-buttons">
        <span class="muted small">Enter to save · Escape to cancel</span>
        <button type="button" class="small" onClick={() => actions.startEdit(null)}>
          Cancel
        </button>
        <button type="button" class="small primary" data-testid="edit-save" onClick={() => void save()} disabled={busy || tooLong}>
          Save
        </button>
      </div>
    </div>
  );
}

function Reactions({ msg, me, actions }: { msg: TlMessage; me: string; actions: RowActions }) {
  const entries = Object.entries(msg.reactions).filter(([, users]) => users.length > 0);
  if (entries.length === 0) return null;
  return (
    <div class="reactions">
      {entries.map(([emoji, users]) => {
        const mine = users.includes(me);
        return (
          <button
            key={emoji}
            type="button"
            class={`reaction${mine ? ' mine' : ''}`}
            data-testid="reaction"
            data-emoji={emoji}
            data-mine={mine ? 'true' : 'false'}
            aria-pressed={mine}
            aria-label={`${emoji} ${users.length}${mine ? ', including you' : ''}`}
            onClick={() => actions.react(msg, emoji)}
          >
            <span aria-hidden="true">{emoji}</span> <span class="count">{users.length}</span>
          </button>
        );
      })}
    </div>
  );
}

/** The author's name, and their @username when it is not the same. */
function Author({ author, handle, testid }: { author: string; handle: string; testid?: string }) {
  return (
    <span class="msg-author" data-testid={testid}>
      {author}
      {handle && <span class="msg-handle"> @{handle}</span>}
    </span>
  );
}

export interface RowProps {
  msg: TlMessage;
  mine: boolean;
  author: string;
  handle: string;
  /** The author's avatar (`avatar_url`); none: their initial. */
  avatarUrl?: string | null;
  /** Same author as the row above, shortly after: the name line is only for screen readers. */
  continued: boolean;
  me: string;
  quote: QuoteInfo | null;
  editing: boolean;
  highlighted: boolean;
  actions: RowActions;
  /** A message's most characters (the server's limit) while it is edited. */
  maxChars?: number;
  /** It mentions the reader (by name, or `@room`). */
  mentionsMe?: boolean;
  /** The reader's username: their own `@name` is marked apart in bodies. */
  myUsername?: string | null;
  /** One's own message: who has read up to it ("Alice, Bob"; '' for nobody) and their ids (space-separated). */
  seenBy?: string;
  seenIds?: string;
}

/** "Seen by …" under one's own message. */
function SeenBy({ names, ids }: { names: string; ids: string }) {
  return (
    <div class="msg-seen" data-testid="message-seen-by" data-user-ids={ids}>
      Seen by {names}
    </div>
  );
}

export const MessageRow = memo(function MessageRow({
  msg,
  mine,
  author,
  handle,
  avatarUrl = null,
  continued,
  me,
  quote,
  editing,
  highlighted,
  actions,
  maxChars = MESSAGE_CHARS,
  mentionsMe = false,
  myUsername = null,
  seenBy = '',
  seenIds = '',
}: RowProps) {
  const [palette, setPalette] = useState(false);
  const edited = msg.edit_number > 0 && !msg.deleted;
  const time = timeLabel(msg.sent_at);
  return (
    <div
      class={`msg${mine ? ' mine' : ''}${continued ? ' cont' : ''}${highlighted ? ' highlighted' : ''}${msg.deleted ? ' deleted' : ''}${mentionsMe ? ' mention-me' : ''}`}
      data-testid="message"
      data-seq={msg.seq}
      data-message-id={msg.message_id}
      data-client-msg-id={msg.client_msg_id}
      data-status="sent"
      data-mine={mine ? 'true' : 'false'}
      data-highlighted={highlighted ? 'true' : undefined}
      data-mention-me={mentionsMe ? 'true' : undefined}
      role="article"
      aria-label={`${author}, ${time}${mentionsMe ? ', mentions you' : ''}`}
    >
      <div class="msg-head">
        <Avatar url={avatarUrl} name={author} small />
        <Author author={author} handle={handle} testid="message-author" />
        <time class="msg-time" dateTime={msg.sent_at} title={dateTimeLabel(msg.sent_at)}>
          {time}
        </time>
      </div>
      {quote && msg.reply_to && !msg.deleted && <Quote quote={quote} replyTo={msg.reply_to} actions={actions} />}
      {msg.deleted ? (
        <div class="msg-body tombstone" data-testid="message-deleted">
          This message was deleted.
        </div>
      ) : editing ? (
        <EditBox msg={msg} actions={actions} maxChars={maxChars} />
      ) : (
        <div class="msg-body-line">
          <span class="msg-body" data-testid="message-body">
            <Linkified text={msg.body ?? ''} me={myUsername} />
          </span>
          {edited && (
            <span class="msg-edited" data-testid="message-edited" title={msg.edited_at ? `Edited ${dateTimeLabel(msg.edited_at)}` : 'Edited'}>
              {' '}
              (edited)
            </span>
          )}
        </div>
      )}
      {!msg.deleted && !editing && <Attachments list={msg.attachments} position={msg.position} />}
      {!msg.deleted && <Reactions msg={msg} me={me} actions={actions} />}
      {mine && seenBy && <SeenBy names={seenBy} ids={seenIds} />}
      {!msg.deleted && !editing && (
        <div class="msg-actions" role="group" aria-label="Message actions">
          <button
            type="button"
            class="icon-button small"
            data-testid="message-react"
            aria-label="Add a reaction"
            aria-expanded={palette}
            onClick={() => setPalette(!palette)}
          >
            <SmileIcon />
          </button>
          <button type="button" class="icon-button small" data-testid="message-reply" aria-label="Reply" onClick={() => actions.reply(msg)}>
            <ReplyIcon />
          </button>
          {mine && (
            <button type="button" class="icon-button small" data-testid="message-edit" aria-label="Edit" onClick={() => actions.startEdit(msg.seq)}>
              <EditIcon />
            </button>
          )}
          {mine && (
            <button type="button" class="icon-button small danger" data-testid="message-delete" aria-label="Delete" onClick={() => actions.remove(msg)}>
              <TrashIcon />
            </button>
          )}
        </div>
      )}
      {palette && !msg.deleted && (
        <div
          class="palette"
          role="group"
          aria-label="Reactions"
          onKeyDown={(e) => {
            if (e.key === 'Escape') {
              e.stopPropagation();
              setPalette(false);
            }
          }}
        >
          {EMOJIS.map((emoji) => (
            <button
              key={emoji}
              type="button"
              class="icon-button"
              data-testid="reaction-option"
              data-emoji={emoji}
              aria-label={`React with ${emoji}`}
              onClick={() => {
                setPalette(false);
                actions.react(msg, emoji);
              }}
            >
              {emoji}
            </button>
          ))}
        </div>
      )}
    </div>
  );
});

export const PendingRow = memo(function PendingRow({
  p,
  author,
  handle,
  quote,
  actions,
}: {
  p: PendingMessage;
  author: string;
  handle: string;
  quote: QuoteInfo | null;
  actions: RowActions;
}) {
  const failed = p.status === 'failed';
  return (
    <div
      class={`msg mine pending${failed ? ' failed' : ''}`}
      data-testid="message"
      data-client-msg-id={p.client_msg_id}
      data-status={p.status}
      data-mine="true"
      role="article"
      aria-label={`${author}, ${failed ? 'not sent' : 'sending'}`}
    >
      <div class="msg-head">
        <Author author={author} handle={handle} testid="message-author" />
        <span class="msg-time">{failed ? 'Not sent' : 'Sending…'}</span>
      </div>
      {quote && p.reply_to && <Quote quote={quote} replyTo={p.reply_to} actions={actions} />}
      <div class="msg-body" data-testid="message-body">
        <Linkified text={p.body} />
      </div>
      {failed && (
        <div class="failed-line" role="alert">
          <span class="small">{p.error ?? 'Could not send.'}</span>
          <button type="button" class="small primary" data-testid="message-retry" onClick={() => actions.retry(p.client_msg_id)}>
            Retry
          </button>
          <button type="button" class="small" onClick={() => actions.discard(p.client_msg_id)}>
            Discard
          </button>
        </div>
      )}
    </div>
  );
});

export const EphemeralRow = memo(function EphemeralRow({ item, author, handle }: { item: EphemeralItem; author: string; handle: string }) {
  return (
    <div class="msg ephemeral" data-testid="ephemeral-message" role="article" aria-label={`${author}, vanishing message`}>
      <div class="msg-head">
        <Author author={author} handle={handle} />
        <time class="msg-time" dateTime={item.at}>
          {timeLabel(item.at)}
        </time>
        <span class="muted small">vanishing · not saved</span>
      </div>
      <div class="msg-body">
        <Linkified text={item.body} />
      </div>
    </div>
  );
});
