/** A message's most characters until the server says (`GET /v1/server`). */
export const MESSAGE_CHARS = 4000;

/** A display name's most characters (the server's `DisplayName` rule). */
export const DISPLAY_NAME_CHARS = 64;

/** Characters as the server counts them: code points of the trimmed text (a message body, a
 * display name), not UTF-16 units. */
export function trimmedChars(text: string): number {
  return [...text.trim()].length;
}

/** Shown under a text box once it nears the limit (its last quarter, at most the last 500):
 * `chars / max`, an error past the limit. */
export function CharCount({ chars, max, testid }: { chars: number; max: number; testid: string }) {
  if (chars <= max - Math.min(500, Math.ceil(max / 4))) return null;
  return (
    <p class={`small ${chars > max ? 'form-error' : 'muted'}`} data-testid={testid}>
      {chars} / {max}
    </p>
  );
}
