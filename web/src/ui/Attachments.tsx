// Files sent with a message (ADR 20): images as their thumbnail (click: the original),
// anything else as a download button. Downloads need the session's token, which an <img src>
// cannot send, so the bytes are fetched and shown through object URLs, one per file and
// kind, kept for the page's life.
import { useEffect, useState } from 'preact/hooks';
import { errorText } from '../api';
import type { Chat } from '../chat';
import type { Attachment } from '../types';
import { useChat } from './context';

/** Longest side of a thumbnail as the server makes it. */
const THUMBNAIL_SIDE = 320;

const urls = new Map<string, Promise<string>>();

function objectUrl(chat: Chat, id: string, thumbnail: boolean, position: number | undefined): Promise<string> {
  const key = `${id}${thumbnail ? '/thumbnail' : ''}`;
  let url = urls.get(key);
  if (!url) {
    url = chat.api.attachment(id, thumbnail, position).then((b) => URL.createObjectURL(b));
    url.catch(() => urls.delete(key));
    urls.set(key, url);
  }
  return url;
}

/** Bytes as people read them: 1.2 MB, 340 KB, 12 B. */
export function sizeLabel(bytes: number): string {
  if (bytes >= 1_000_000) return `${(bytes / 1_000_000).toFixed(1)} MB`;
  if (bytes >= 1_000) return `${Math.round(bytes / 1_000)} KB`;
  return `${bytes} B`;
}

async function download(chat: Chat, a: Attachment, position: number | undefined): Promise<void> {
  try {
    const link = document.createElement('a');
    link.href = await objectUrl(chat, a.attachment_id, false, position);
    link.download = a.name;
    link.click();
  } catch (e) {
    chat.toast(`${a.name} could not be downloaded: ${errorText(e)}`);
  }
}

function ImageAttachment({ a, position }: { a: Attachment & { image: { width: number; height: number } }; position?: number }) {
  const chat = useChat();
  const [src, setSrc] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    objectUrl(chat, a.attachment_id, true, position).then(
      (u) => live && setSrc(u),
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
  }, [a.attachment_id]);
  const scale = Math.min(1, THUMBNAIL_SIDE / Math.max(a.image.width, a.image.height, 1));
  const width = Math.max(1, Math.round(a.image.width * scale));
  const height = Math.max(1, Math.round(a.image.height * scale));
  return (
    <button
      type="button"
      class="attachment-image"
      data-testid="attachment-image"
      title={`${a.name} (${a.image.width}×${a.image.height}, ${sizeLabel(a.size)})`}
      style={{ width: `${width}px`, height: `${height}px` }}
      onClick={() => void download(chat, a, position)}
    >
      {src ? (
        <img src={src} alt={a.name} width={width} height={height} data-testid="attachment-thumbnail" />
      ) : (
        <span class="muted small">{failed ? 'Image unavailable' : 'Loading…'}</span>
      )}
    </button>
  );
}

function FileAttachment({ a, position }: { a: Attachment; position?: number }) {
  const chat = useChat();
  return (
    <button type="button" class="attachment-file" data-testid="attachment-file" onClick={() => void download(chat, a, position)}>
      <span aria-hidden="true">📄</span> <span class="attachment-name">{a.name}</span>{' '}
      <span class="muted small">{sizeLabel(a.size)}</span>
    </button>
  );
}

/** `position`: where the message was sent, when it came live (downloads wait for it). */
export function Attachments({ list, position }: { list: Attachment[] | undefined; position?: number }) {
  if (!list?.length) return null;
  return (
    <div class="attachments" data-testid="attachments">
      {list.map((a) =>
        a.image ? (
          <ImageAttachment key={a.attachment_id} a={{ ...a, image: a.image }} position={position} />
        ) : (
          <FileAttachment key={a.attachment_id} a={a} position={position} />
        ),
      )}
    </div>
  );
}
