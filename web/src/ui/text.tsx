// Text helpers: links made clickable and `@name` mentions emphasised, by splitting text into
// text nodes, <a> and <strong> elements (never HTML), and dates.

import type { ComponentChildren } from 'preact';
import { splitMentions } from '../state/mentions';

export type Piece = { text: string; href?: string };

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** Splits text into plain pieces and http(s) links (trailing punctuation stays text). */
export function splitLinks(text: string): Piece[] {
  const out: Piece[] = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    const start = m.index ?? 0;
    const trail = TRAILING.exec(url);
    if (trail) {
      // Keep a closing parenthesis that balances one inside the URL.
      let t = trail[0];
      if (t.startsWith(')') && url.slice(0, -t.length).includes('(')) t = t.slice(1);
      url = url.slice(0, url.length - t.length);
    }
    if (!/^https?:\/\/[^/?#\s]+/i.test(url)) continue;
    if (start > last) out.push({ text: text.slice(last, start) });
    out.push({ text: url, href: url });
    last = start + url.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** Plain text with its `@name`s emphasised (`me`: the reader's username, marked apart). */
export function Mentioned({ text, me }: { text: string; me: string | null }): ComponentChildren {
  const pieces = splitMentions(text);
  if (pieces.length === 1 && pieces[0]!.mention === undefined) return text;
  return pieces.map((p, i) =>
    p.mention === undefined ? (
      p.text
    ) : (
      <strong
        key={i}
        class={`mention${p.mention === me ? ' mention-self' : ''}`}
        data-testid="mention"
        data-mention={p.mention}
      >
        {p.text}
      </strong>
    ),
  );
}

/** A message's text: links as safe anchors, `@name`s emphasised. */
export function Linkified({ text, me = null }: { text: string; me?: string | null }): ComponentChildren {
  const pieces = splitLinks(text);
  if (pieces.length === 1 && !pieces[0]!.href) return <Mentioned text={text} me={me} />;
  return pieces.map((p, i) =>
    p.href ? (
      <a key={i} href={p.href} target="_blank" rel="noopener noreferrer">
        {p.text}
      </a>
    ) : (
      <Mentioned key={i} text={p.text} me={me} />
    ),
  );
}

export function dayKey(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

// Intl.DateTimeFormat instances are costly to create: one each, made on first use.
let fmtTime: Intl.DateTimeFormat | null = null;
let fmtDateTime: Intl.DateTimeFormat | null = null;
const fmtDay = new Map<boolean, Intl.DateTimeFormat>();

export function dayLabel(iso: string, now = new Date()): string {
  const d = new Date(iso);
  const today = dayKey(now.toISOString());
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  const k = dayKey(iso);
  if (k === today) return 'Today';
  if (k === dayKey(y.toISOString())) return 'Yesterday';
  const sameYear = d.getFullYear() === now.getFullYear();
  let f = fmtDay.get(sameYear);
  if (!f) {
    f = new Intl.DateTimeFormat(undefined, { weekday: 'long', year: sameYear ? undefined : 'numeric', month: 'long', day: 'numeric' });
    fmtDay.set(sameYear, f);
  }
  return f.format(d);
}

export function timeLabel(iso: string): string {
  fmtTime ??= new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  return fmtTime.format(new Date(iso));
}

export function dateTimeLabel(iso: string): string {
  fmtDateTime ??= new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  return fmtDateTime.format(new Date(iso));
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return '?';
  const a = [...parts[0]!][0] ?? '?';
  const b = parts.length > 1 ? ([...parts[parts.length - 1]!][0] ?? '') : '';
  return (a + b).toUpperCase();
}
