// The parts every form of the client shares: its error line, a dialog's Cancel/submit
// footer, and the busy flag and error around one action at a time.

import { useState } from 'preact/hooks';
import { errorText } from '../api';

/** A form's error, announced (role="alert"); nothing when there is none. */
export function FormError({ error, testid = 'form-error' }: { error: string | null | undefined; testid?: string }) {
  if (!error) return null;
  return (
    <p class="form-error" role="alert" data-testid={testid}>
      {error}
    </p>
  );
}

/** The end of a dialog's form: its error, then Cancel and the submit button (disabled while busy). */
export function FormFooter({
  error,
  busy,
  onCancel,
  submit,
  submitTestid,
}: {
  error: string | null;
  busy: boolean;
  onCancel: () => void;
  /** The submit button's label. */
  submit: string;
  submitTestid: string;
}) {
  return (
    <>
      <FormError error={error} />
      <div class="row-end">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" data-testid={submitTestid} disabled={busy}>
          {submit}
        </button>
      </div>
    </>
  );
}

/**
 * One action at a time: `run(f, messages)` does nothing while one is under way, clears the
 * error, and shows f's failure (an API error by its code in `messages`, else its text).
 */
export function useBusy() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (f: () => Promise<void>, messages: Record<string, string> = {}) => {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(errorText(e, messages));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}
