import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorText } from '../api';
import type { MySession } from '../types';
import { AUTH_ERRORS } from './Auth';
import { Avatar } from './Avatar';
import { trimmedChars, CharCount, DISPLAY_NAME_CHARS } from './charLimit';
import { useApp, useChat } from './context';
import { FormError, useBusy } from './forms';
import { Modal } from './Modal';
import { dateTimeLabel } from './text';

const PASSWORD_ERRORS: Record<string, string> = {
  wrong_password: 'The current password is wrong.',
  invalid_password: AUTH_ERRORS.invalid_password,
};

const AVATAR_ERRORS: Record<string, string> = {
  avatar_too_large: 'That image is too large: at most 2 MB.',
  avatar_type_not_allowed: 'Choose a PNG, JPEG, WebP or GIF image.',
  avatar_unreadable: 'That image could not be read.',
  avatar_empty: 'That file is empty.',
};

const ERASE_ERRORS: Record<string, string> = {
  confirmation_mismatch: 'That is not your username: nothing was erased.',
};

/**
 * One's own settings: the name and picture others see, read receipts, the browser's notifications, the
 * password, the sessions signed in, and, set apart, erasing one's account.
 */
export function SettingsDialog({ onClose }: { onClose: () => void }) {
  const chat = useChat();
  const me = useApp((s) => s.me);
  const permission = useApp((s) => s.notifications);
  const { busy, error, run } = useBusy();
  // What was just asked for, shown while the server is asked (then its answer is).
  const [wanted, setWanted] = useState<boolean | null>(null);
  // Bumped by a password change (it signs the other sessions out): the list is read again.
  const [sessionsRead, setSessionsRead] = useState(0);
  useEffect(() => {
    void chat.loadSettings();
  }, []);
  const privateReceipts = wanted ?? me?.private_receipts ?? false;
  return (
    <Modal title="Settings" onClose={onClose} testid="settings-dialog">
      <div class="stack">
        <DisplayNameSetting />
        <AvatarSetting />
        <section class="setting">
          <label class="check-row">
            <input
              type="checkbox"
              data-testid="private-receipts-toggle"
              checked={privateReceipts}
              disabled={busy || !me}
              onChange={(e) => {
                const on = e.currentTarget.checked;
                setWanted(on);
                void run(async () => {
                  try {
                    await chat.setPrivateReceipts(on);
                  } finally {
                    setWanted(null);
                  }
                });
              }}
            />
            <span>Keep read receipts private</span>
          </label>
          <p class="muted small">
            Nobody is shown how far you have read (the “Seen by” under their messages). Your own unread counts are not affected.
          </p>
          <FormError error={error} />
        </section>
        <section class="setting">
          <h3 class="setting-title">Desktop notifications</h3>
          <NotificationPermissionLine permission={permission} onEnable={() => void chat.enableNotifications()} />
          <p class="muted small">Which messages notify you is chosen per room, in the room’s header.</p>
        </section>
        <PasswordSetting onChanged={() => setSessionsRead((n) => n + 1)} />
        <SessionsSetting read={sessionsRead} />
        <EraseAccountSetting />
        <div class="row-end">
          <button type="button" data-testid="settings-close" onClick={onClose}>
            Done
          </button>
        </div>
      </div>
    </Modal>
  );
}

/** The name others see (empty: one's username). */
function DisplayNameSetting() {
  const chat = useChat();
  const me = useApp((s) => s.me);
  const { busy, error, run } = useBusy();
  // What is typed; null until something is (the current name is shown).
  const [typed, setTyped] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const current = me && me.display_name !== me.username ? me.display_name : '';
  const value = typed ?? current;
  // The server counts characters (code points) of the name as sent (trimmed).
  const chars = trimmedChars(value);
  const tooLong = chars > DISPLAY_NAME_CHARS;
  return (
    <form
      class="setting stack"
      onSubmit={(e) => {
        e.preventDefault();
        if (tooLong) return;
        setNote(null);
        void run(async () => {
          const shown = await chat.setDisplayName(value.trim());
          setTyped(null);
          setNote(`Others now see you as “${shown}”.`);
        }, AUTH_ERRORS);
      }}
    >
      <label>
        Display name
        <input
          data-testid="settings-display-name"
          name="display_name"
          autoComplete="nickname"
          placeholder={me?.username}
          value={value}
          disabled={!me}
          onInput={(e) => {
            setTyped(e.currentTarget.value);
            setNote(null);
          }}
        />
      </label>
      <p class="hint">The name others see{me ? `; left empty, your username (${me.username})` : ''}.</p>
      <CharCount chars={chars} max={DISPLAY_NAME_CHARS} testid="display-name-count" />
      <FormError error={error} testid="display-name-error" />
      {note && (
        <p class="note small" role="status" data-testid="display-name-result">
          {note}
        </p>
      )}
      <div class="row-end">
        <button type="submit" data-testid="settings-display-name-save" disabled={busy || !me || tooLong}>
          Save name
        </button>
      </div>
    </form>
  );
}

/** The picture others see beside one's name: choose an image, or remove it. */
function AvatarSetting() {
  const chat = useChat();
  const me = useApp((s) => s.me);
  const { busy, error, run } = useBusy();
  const [note, setNote] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);
  return (
    <section class="setting stack" data-testid="avatar-setting">
      <h3 class="setting-title">Picture</h3>
      <div class="avatar-setting">
        <Avatar url={me?.avatar_url} name={me?.display_name || me?.username || '?'} />
        <label class="button">
          {me?.avatar_url ? 'Change picture…' : 'Choose picture…'}
          <input
            ref={input}
            type="file"
            class="sr-only"
            data-testid="avatar-file"
            accept="image/png,image/jpeg,image/webp,image/gif"
            disabled={busy || !me}
            onChange={(e) => {
              const file = e.currentTarget.files?.[0];
              if (!file) return;
              setNote(null);
              void run(async () => {
                try {
                  await chat.setAvatar(file);
                  setNote('Others now see your new picture.');
                } finally {
                  if (input.current) input.current.value = '';
                }
              }, AVATAR_ERRORS);
            }}
          />
        </label>
        {me?.avatar_url && (
          <button
            type="button"
            data-testid="avatar-remove"
            disabled={busy}
            onClick={() => {
              setNote(null);
              void run(async () => {
                await chat.removeAvatar();
                setNote('Your picture was removed.');
              });
            }}
          >
            Remove
          </button>
        )}
      </div>
      <p class="hint">A PNG, JPEG, WebP or GIF of at most 2 MB; its middle square is shown.</p>
      <FormError error={error} testid="avatar-error" />
      {note && (
        <p class="note small" role="status" data-testid="avatar-result">
          {note}
        </p>
      )}
    </section>
  );
}

/** What a password change did. */
export function passwordChangedText(ended: number): string {
  return `Password changed; ${ended === 0 ? 'no' : ended} other session${ended === 1 ? '' : 's'} signed out.`;
}

/** A new password (the current one first); the other sessions are signed out, this one stays. */
function PasswordSetting({ onChanged }: { onChanged: () => void }) {
  const chat = useChat();
  const username = useApp((s) => s.me?.username ?? '');
  const { busy, error, run } = useBusy();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [note, setNote] = useState<string | null>(null);
  return (
    <form
      class="setting stack"
      onSubmit={(e) => {
        e.preventDefault();
        setNote(null);
        void run(async () => {
          const ans = await chat.api.changePassword(current, next);
          setCurrent('');
          setNext('');
          setNote(passwordChangedText(ans.sessions_ended));
          onChanged();
        }, PASSWORD_ERRORS);
      }}
    >
      <h3 class="setting-title">Password</h3>
      {/* For password managers: whose password this is. */}
      <input type="text" name="username" autoComplete="username" value={username} readOnly hidden />
      <label>
        Current password
        <input
          data-testid="settings-current-password"
          name="current-password"
          type="password"
          autoComplete="current-password"
          required
          value={current}
          onInput={(e) => setCurrent(e.currentTarget.value)}
        />
      </label>
      <label>
        New password
        <input
          data-testid="settings-new-password"
          name="new-password"
          type="password"
          autoComplete="new-password"
          required
          value={next}
          onInput={(e) => setNext(e.currentTarget.value)}
        />
      </label>
      <p class="hint">At least 10 characters. Your other sessions are signed out; this one stays signed in.</p>
      <FormError error={error} testid="password-error" />
      {note && (
        <p class="note small" role="status" data-testid="password-result">
          {note}
        </p>
      )}
      <div class="row-end">
        <button type="submit" data-testid="settings-password-submit" disabled={busy}>
          Change password
        </button>
      </div>
    </form>
  );
}

/**
 * Erasing one's account, for good: enabled once one's username is typed again; then signed out
 * here (the sign-in screen says why), as everywhere else.
 */
function EraseAccountSetting() {
  const chat = useChat();
  const username = useApp((s) => s.me?.username ?? '');
  const { busy, error, run } = useBusy();
  const [typed, setTyped] = useState('');
  const confirmed = username !== '' && typed.trim() === username;
  return (
    <form
      class="setting stack danger-zone"
      aria-labelledby="erase-account-title"
      data-testid="erase-account"
      onSubmit={(e) => {
        e.preventDefault();
        if (!confirmed) return;
        void run(() => chat.eraseAccount(typed.trim()), ERASE_ERRORS);
      }}
    >
      <h3 class="setting-title danger" id="erase-account-title">
        Erase my account
      </h3>
      <p class="muted small" id="erase-account-what">
        This cannot be undone. Your messages will show as “[erased]” for everyone, your name too, and you will be signed out
        everywhere.
      </p>
      <label>
        {username ? `Type your username, ${username}, to confirm` : 'Type your username to confirm'}
        <input
          data-testid="settings-erase-username"
          name="confirm-username"
          autoComplete="off"
          autoCapitalize="none"
          spellcheck={false}
          aria-describedby="erase-account-what"
          value={typed}
          disabled={!username}
          onInput={(e) => setTyped(e.currentTarget.value)}
        />
      </label>
      <FormError error={error} testid="erase-error" />
      <div class="row-end">
        <button type="submit" class="danger-text" data-testid="settings-erase-submit" disabled={busy || !confirmed}>
          Erase my account
        </button>
      </div>
    </form>
  );
}

/** A session's device, from its user agent: "Firefox on Linux", say. */
export function deviceLabel(userAgent: string | null): string {
  const ua = userAgent ?? '';
  const browser = /Edg(e|A|iOS)?\//.test(ua)
    ? 'Edge'
    : /OPR\//.test(ua)
      ? 'Opera'
      : /Firefox\/|FxiOS\//.test(ua)
        ? 'Firefox'
        : /Chrom(e|ium)\/|CriOS\//.test(ua)
          ? 'Chrome'
          : /Safari\//.test(ua)
            ? 'Safari'
            : null;
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad|iPod/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X|Macintosh/.test(ua)
          ? 'macOS'
          : /CrOS/.test(ua)
            ? 'ChromeOS'
            : /Linux/.test(ua)
              ? 'Linux'
              : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? os ?? (ua.trim().slice(0, 60) || 'Unknown device');
}

/** Where one is signed in: this device first, then the others, each of which can be signed out. */
function SessionsSetting({ read }: { read: number }) {
  const chat = useChat();
  const [sessions, setSessions] = useState<MySession[] | null>(null);
  const { busy, error, setError, run } = useBusy();
  // Only the answer of the latest read is shown.
  const serial = useRef(0);
  const load = async () => {
    const n = ++serial.current;
    try {
      const list = await chat.api.sessions();
      if (n === serial.current) setSessions([...list].sort((a, b) => Number(b.current) - Number(a.current)));
    } catch (e) {
      if (n === serial.current) setError(errorText(e));
    }
  };
  useEffect(() => {
    void load();
  }, [read]);
  const end = (id: string) =>
    void run(async () => {
      try {
        await chat.api.endSession(id);
      } catch (e) {
        // Ended already (elsewhere): the list is just out of date.
        if (!(e instanceof ApiError && e.code === 'session_not_found')) throw e;
      }
      await load();
    });
  return (
    <section class="setting">
      <h3 class="setting-title">Sessions</h3>
      <p class="muted small">Where you are signed in. A session signed out here ends on its device within minutes.</p>
      {!sessions && !error && <p class="muted">Loading…</p>}
      {sessions && (
        <ul class="sessions" data-testid="sessions">
          {sessions.map((s) => {
            const device = deviceLabel(s.user_agent);
            return (
              <li
                key={s.session_id}
                class="session-item"
                data-testid="session-item"
                data-session-id={s.session_id}
                data-current={String(s.current)}
              >
                <span class="session-what" title={s.user_agent ?? undefined}>
                  <span>{device}</span>
                  <span class="muted small">
                    Signed in {dateTimeLabel(s.created_at)} · active {dateTimeLabel(s.refreshed_at)}
                  </span>
                </span>
                {s.current ? (
                  <span class="role small" data-testid="session-this-device">
                    This device
                  </span>
                ) : (
                  <button
                    type="button"
                    class="small danger-text"
                    data-testid="session-end"
                    aria-label={`Sign out ${device}, signed in ${dateTimeLabel(s.created_at)}`}
                    disabled={busy}
                    onClick={() => end(s.session_id)}
                  >
                    Sign out
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
      <FormError error={error} testid="sessions-error" />
    </section>
  );
}

function NotificationPermissionLine({ permission, onEnable }: { permission: NotificationPermission | 'unsupported'; onEnable: () => void }) {
  switch (permission) {
    case 'granted':
      return <p data-testid="notifications-status">On in this browser.</p>;
    case 'denied':
      return <p data-testid="notifications-status">Blocked in this browser: allow them in the site’s settings.</p>;
    case 'unsupported':
      return <p data-testid="notifications-status">Not supported in this browser.</p>;
    default:
      return (
        <p>
          {/* A click asks the browser: permission is never requested on load. */}
          <button type="button" class="primary" data-testid="settings-notifications-enable" onClick={onEnable}>
            Turn on desktop notifications
          </button>
        </p>
      );
  }
}
