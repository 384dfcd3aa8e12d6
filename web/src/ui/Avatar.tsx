// A user's picture beside their name (issue #18), or their initial when they have none (or
// it cannot be read). The bytes need the session's token, which an <img src> cannot send, so
// they are fetched and shown through an object URL, one per picture URL (each picture has its
// own: `?v=<avatar_id>`), kept for the page's life.
import { useContext, useEffect, useState } from 'preact/hooks';
import type { Chat } from '../chat';
import { ChatContext } from './context';

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
    objectUrl(chat, url).then(
      (u) => live && setSrc(u),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [url]);
  return (
    <span class={`avatar${small ? ' small' : ''}`} data-testid="avatar" data-avatar-url={url || undefined} aria-hidden="true">
      {src ? <img src={src} alt="" data-testid="avatar-image" /> : initialOf(name)}
    </span>
  );
}
