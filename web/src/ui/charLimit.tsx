/** A message's most characters until the server says (`GET /v1/server`). */
export const MESSAGE_CHARS = 4000;

/** A display name's most characters (the server's `DisplayName` rule). */
export const DISPLAY_NAME_CHARS = 64;

/** Characters as the server counts them: code points of the trimmed body, not UTF-16 units. */
export function bodyChars(text: string): number {
  return [...text.trim()].length;
}

/** Shown under a text box once it nears the limit (past `from`, by default 500 before it):
 * `chars / max`, an error past the limit. */
export function CharCount({ chars, max, testid, from = max - 500 }: { chars: number; max: number; testid: string; from?: number }) {
  if (chars <= from) return null;
  return (
    <p class={`small ${chars > max ? 'form-error' : 'muted'}`} data-testid={testid}>
      {chars} / {max}
    </p>
  );
}
