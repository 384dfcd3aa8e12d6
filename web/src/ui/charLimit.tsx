/** A message's most characters until the server says (`GET /v1/server`). */
export const MESSAGE_CHARS = 4000;

/** Characters as the server counts them: code points of the trimmed body, not UTF-16 units. */
export function bodyChars(text: string): number {
  return [...text.trim()].length;
}

/** Shown under a message box once it nears the limit: `chars / max`, an error past it. */
export function CharCount({ chars, max, testid }: { chars: number; max: number; testid: string }) {
  if (chars <= max - 500) return null;
  return (
    <p class={`small ${chars > max ? 'form-error' : 'muted'}`} data-testid={testid}>
      {chars} / {max}
    </p>
  );
}
