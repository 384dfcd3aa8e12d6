import { useEffect, useState } from 'preact/hooks';
import { errorText } from '../api';
import type { SsoInfo } from '../types';
import { trimmedChars, CharCount, DISPLAY_NAME_CHARS } from './charLimit';
import { useApp, useChat } from './context';
import { FormError } from './forms';

export const AUTH_ERRORS: Record<string, string> = {
  invalid_credentials: 'Wrong username or password.',
  username_taken: 'That username is taken.',
  invalid_username: 'Usernames are 3–32 characters: lowercase letters, digits, “_”, “.” and “-”.',
  invalid_password: 'Passwords are 10 to 1024 characters.',
  invalid_display_name: 'Display names are at most 64 characters.',
};

export function AuthScreen() {
  const chat = useChat();
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState<SsoInfo | null>(null);
  // Why one was signed out (an erasure), until the next sign-in.
  const notice = useApp((s) => s.signedOutNotice);
  useEffect(() => {
    // No button when the server offers none, or does not say (an older server).
    chat.api.ssoInfo().then(setSso, () => undefined);
  }, []);

  const register = mode === 'register';
  // The server counts characters (code points) of the name as sent (trimmed).
  const nameChars = trimmedChars(displayName);
  const nameTooLong = register && nameChars > DISPLAY_NAME_CHARS;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy || nameTooLong) return;
    setError(null);
    setBusy(true);
    try {
      if (mode === 'login') await chat.login(username.trim(), password);
      else await chat.register(username.trim(), password, displayName.trim());
    } catch (err) {
      setError(errorText(err, AUTH_ERRORS));
      setBusy(false);
    }
  };

  return (
    <main class="auth">
      <form class="auth-card" onSubmit={submit} aria-labelledby="auth-title">
        <h1 id="auth-title">{register ? 'Create an account' : 'Sign in'}</h1>
        {notice && (
          <p class="auth-notice" role="status" data-testid="auth-notice">
            {notice}
          </p>
        )}
        <label>
          Username
          <input
            data-testid="auth-username"
            name="username"
            autoComplete="username"
            autoCapitalize="none"
            spellcheck={false}
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        {register && (
          <label>
            Display name <span class="muted">(optional)</span>
            <input
              data-testid="auth-display-name"
              name="display_name"
              autoComplete="nickname"
              value={displayName}
              onInput={(e) => setDisplayName(e.currentTarget.value)}
            />
          </label>
        )}
        {register && <CharCount chars={nameChars} max={DISPLAY_NAME_CHARS} testid="auth-display-name-count" />}
        <label>
          Password
          <input
            data-testid="auth-password"
            name="password"
            type="password"
            autoComplete={register ? 'new-password' : 'current-password'}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {register && <p class="hint">At least 10 characters.</p>}
        <FormError error={error} testid="auth-error" />
        <button class="primary" type="submit" data-testid="auth-submit" disabled={busy || nameTooLong}>
          {register ? 'Create account' : 'Sign in'}
        </button>
        {sso?.enabled && (
          <button
            type="button"
            data-testid="auth-sso"
            disabled={busy}
            // A page navigation: the provider's sign-in page, then back to `/#sso&…`.
            onClick={() => location.assign(chat.api.ssoStartUrl())}
          >
            Sign in with {sso.name || 'single sign-on'}
          </button>
        )}
        <button
          type="button"
          class="link"
          data-testid="auth-mode-toggle"
          onClick={() => {
            setMode(register ? 'login' : 'register');
            setError(null);
          }}
        >
          {register ? 'I already have an account' : 'Create an account'}
        </button>
      </form>
    </main>
  );
}
