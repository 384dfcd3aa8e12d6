// A user's picture beside their name (issue #18), or their initial when they have none (or
// it cannot be read, after a few tries). The bytes need the session's token, which an <img src> cannot send, so
// they are fetched and shown through an object URL, one per picture URL (each picture has its
// own: `?v=<avatar_id>`), kept for the page's life.
import { useContext, useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api';
import type { Chat } from '../chat';
import { ChatContext } from './context';

/**
 * Waits before each new try of a picture that could not be read (the network, or a server
 * busy or not caught up yet); then the initial stays until the picture changes. A 404 is not
 * tried again: the picture is gone (replaced, removed or erased).
 */
export const RETRY_MS: readonly number[] = [1_000, 3_000, 10_000];

const urls = new Map<string, Promise<string>>();

function objectUrl(chat: Chat, url: string): Promise<string> {
  let u = urls.get(url);
  if (!u) {
    u = chat.avatar(url).then((b) => URL.createObjectURL(b));
    u.catch(() => urls.delete(url));
    urls.set(url, u);
  }
  return u;
}

/** The letter shown in place of a picture: the name's first, upper case. */
export function initialOf(name: string): string {
  const first = [...name.trim()][0];
  return first ? first.toUpperCase() : '?';
}

/** `url`: the picture's (`avatar_url` of the reads); none: the initial of `name`. */
export function Avatar({ url, name, small = false }: { url?: string | null; name: string; small?: boolean }) {
  // Without a client (a component rendered alone), the initial only.
  const chat = useContext(ChatContext);
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    setSrc(null);
    if (!url || !chat) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const attempt = (tries: number) =>
      objectUrl(chat, url).then(
        (u) => live && setSrc(u),
        (e) => {
          const gone = e instanceof ApiError && e.status === 404;
          if (live && !gone && tries < RETRY_MS.length) timer = setTimeout(() => attempt(tries + 1), RETRY_MS[tries]);
        },
      );
    attempt(0);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [url]);
  return (
    <span class={`avatar${small ? ' small' : ''}`} data-testid="avatar" data-avatar-url={url || undefined} aria-hidden="true">
      {src ? <img src={src} alt="" data-testid="avatar-image" /> : initialOf(name)}
    </span>
  );
}
