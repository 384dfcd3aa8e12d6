// The Settings dialog's display name, password, sessions and erasure, on a real Api and controller
// whose server is faked.

import { render } from 'preact';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SESSION_KEY, type Session } from '../api';
import { fakeServerChat, json, type Sent } from '../testing';
import type { MySession } from '../types';
import { ChatContext } from './context';
import { deviceLabel, passwordChangedText, SettingsDialog } from './Settings';

const ME = 'u-me';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

function mySession(id: string, over: Partial<MySession> = {}): MySession {
  return {
    session_id: id,
    created_at: '2026-01-01T10:00:00Z',
    refreshed_at: '2026-01-02T10:00:00Z',
    user_agent: FIREFOX,
    current: false,
    ...over,
  };
}

const signedIn = (over: Partial<Session> = {}): Session => ({
  userId: ME,
  accessToken: 'a1',
  refreshToken: 'r1',
  expiresAt: Date.now() + 600_000,
  username: 'meg',
  ...over,
});

/**
 * A server with the caller's sessions (the list, newest first: another device, this one),
 * password "old password" and display name "Meg".
 */
function server() {
  let sessions = [mySession('s-other', { user_agent: IPHONE }), mySession('s-here', { current: true })];
  let displayName = 'Meg';
  let avatarUrl: string | null = null;
  // The username the server holds (what an erasure must be confirmed with).
  let username = 'meg';
  const answer = (r: Sent): unknown => {
    const key = `${r.method} ${r.url.split('?')[0]}`;
    if (key === 'GET /v1/me') return { id: ME, username: 'meg', display_name: displayName || 'meg', avatar_url: avatarUrl, private_receipts: false };
    if (key === 'PUT /v1/me/avatar') {
      const image = r.body as Blob;
      if (image.size > 2 * 1024 * 1024) return json(413, { error: { code: 'avatar_too_large', message: 'at most 2097152 bytes' } });
      avatarUrl = `/v1/users/${ME}/avatar?v=a${image.size}`;
      return { avatar_id: `a${image.size}`, avatar_url: avatarUrl, content_type: 'image/jpeg', size: 100, side: 256, position: 88 };
    }
    if (key === 'DELETE /v1/me/avatar') {
      avatarUrl = null;
      return { avatar_id: null, avatar_url: null, content_type: null, size: null, side: null, position: 89 };
    }
    if (key === `GET /v1/users/${ME}/avatar`) return new Response(new Blob(['jpeg'], { type: 'image/jpeg' }), { status: 200 });
    if (key === 'GET /v1/me/sessions') return { sessions };
    if (r.method === 'DELETE' && r.url.startsWith('/v1/me/sessions/')) {
      const id = decodeURIComponent(r.url.slice('/v1/me/sessions/'.length));
      if (!sessions.some((s) => s.session_id === id && !s.current)) {
        return json(404, { error: { code: 'session_not_found', message: 'no such session' } });
      }
      sessions = sessions.filter((s) => s.session_id !== id);
      return new Response(null, { status: 204 });
    }
    if (key === 'POST /v1/me/password') {
      const b = r.body as { current_password: string; new_password: string };
      if (b.current_password !== 'old password') return json(403, { error: { code: 'wrong_password', message: 'the current password is wrong' } });
      if (b.new_password.length < 10) return json(400, { error: { code: 'invalid_password', message: 'too short' } });
      const ended = sessions.filter((s) => !s.current).length;
      sessions = sessions.filter((s) => s.current);
      return { sessions_ended: ended };
    }
    if (key === 'POST /v1/me/erase') {
      if ((r.body as { confirm_username: string }).confirm_username !== username) {
        return json(422, { error: { code: 'confirmation_mismatch', message: 'confirm_username must be your own username' } });
      }
      return { user_id: ME, keys_shredded: 1, sessions_ended: sessions.length, position: 120 };
    }
    if (key === 'PATCH /v1/me/profile') {
      const name = (r.body as { display_name: string }).display_name;
      // The server's rule: at most 64 characters (code points).
      if ([...name].length > 64) return json(400, { error: { code: 'invalid_display_name', message: 'too long' } });
      displayName = name;
      return { display_name: name, position: 77 };
    }
    return json(404, { error: { code: 'not_found', message: key } });
  };
  return {
    answer,
    /** Another device's session ends meanwhile (the list shown is out of date). */
    endElsewhere: (id: string) => {
      sessions = sessions.filter((s) => s.session_id !== id);
    },
    /** The server holds another username than the one shown (an erasure is refused). */
    renameElsewhere: (name: string) => {
      username = name;
    },
  };
}

let host: HTMLElement;
afterEach(() => {
  render(null, host);
  host.remove();
});

function open(session = signedIn()) {
  const srv = server();
  const t = fakeServerChat(srv.answer, session);
  host = document.createElement('div');
  document.body.appendChild(host);
  render(
    <ChatContext.Provider value={t.chat}>
      <SettingsDialog onClose={() => undefined} />
    </ChatContext.Provider>,
    host,
  );
  return { ...t, srv };
}

const $ = <E extends Element = HTMLElement>(id: string) => host.querySelector<E & Element>(`[data-testid="${id}"]`);
const $$ = (id: string) => [...host.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)];
const text = (id: string) => $(id)?.textContent?.trim() ?? null;

/** Types into a field, then lets the component render what was typed. */
async function type(id: string, value: string) {
  const input = $<HTMLInputElement>(id)!;
  input.value = value;
  input.dispatchEvent(new Event('input', { bubbles: true }));
  await new Promise((r) => setTimeout(r, 0));
}

function submit(buttonId: string) {
  $<HTMLButtonElement>(buttonId)!.closest('form')!.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
}

describe('Settings: sessions', () => {
  it('lists this device first, labelled, and signs another session out', async () => {
    const { sent } = open();
    await vi.waitFor(() => expect($$('session-item')).toHaveLength(2));
    const [here, other] = $$('session-item');
    expect(here!.dataset.sessionId).toBe('s-here');
    expect(here!.dataset.current).toBe('true');
    expect(here!.textContent).toContain('Firefox on Linux');
    expect(here!.querySelector('[data-testid="session-this-device"]')?.textContent).toBe('This device');
    expect(here!.querySelector('[data-testid="session-end"]')).toBeNull();
    expect(other!.textContent).toContain('Safari on iOS');
    expect(other!.querySelector('[data-testid="session-this-device"]')).toBeNull();

    (other!.querySelector('[data-testid="session-end"]') as HTMLButtonElement).click();
    await vi.waitFor(() => expect($$('session-item')).toHaveLength(1));
    expect(sent.filter((r) => r.url.startsWith('/v1/me/sessions')).map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /v1/me/sessions',
      'DELETE /v1/me/sessions/s-other',
      'GET /v1/me/sessions',
    ]);
    expect($('sessions-error')).toBeNull();
  });

  it('a session that ended meanwhile just leaves the list (no error)', async () => {
    const { srv, sent } = open();
    await vi.waitFor(() => expect($$('session-end')).toHaveLength(1));
    srv.endElsewhere('s-other');
    $$('session-end')[0]!.click();
    await vi.waitFor(() => expect($$('session-item')).toHaveLength(1));
    expect(sent.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    expect($('sessions-error')).toBeNull();
  });
});

describe('Settings: password', () => {
  it('shows a wrong current password, then what the change did; the list is read again', async () => {
    const { sent, chat } = open();
    await vi.waitFor(() => expect($$('session-item')).toHaveLength(2));

    await type('settings-current-password', 'a wrong one');
    await type('settings-new-password', 'a brand new password');
    submit('settings-password-submit');
    await vi.waitFor(() => expect(text('password-error')).toBe('The current password is wrong.'));
    expect($('password-result')).toBeNull();

    await type('settings-current-password', 'old password');
    submit('settings-password-submit');
    await vi.waitFor(() => expect(text('password-result')).toBe('Password changed; 1 other session signed out.'));
    expect($('password-error')).toBeNull();
    expect(sent.filter((r) => r.url === '/v1/me/password').map((r) => r.body)).toEqual([
      { current_password: 'a wrong one', new_password: 'a brand new password' },
      { current_password: 'old password', new_password: 'a brand new password' },
    ]);
    expect($<HTMLInputElement>('settings-current-password')!.value).toBe('');
    expect($<HTMLInputElement>('settings-new-password')!.value).toBe('');
    await vi.waitFor(() => expect($$('session-item')).toHaveLength(1));
    // Still signed in, with the same tokens.
    expect(chat.api.current?.refreshToken).toBe('r1');
  });

  it('a password too short is explained', async () => {
    open();
    await type('settings-current-password', 'old password');
    await type('settings-new-password', 'short');
    submit('settings-password-submit');
    await vi.waitFor(() => expect(text('password-error')).toBe('Passwords are 10 to 1024 characters.'));
  });

  it('says how many sessions ended', () => {
    expect(passwordChangedText(0)).toBe('Password changed; no other sessions signed out.');
    expect(passwordChangedText(1)).toBe('Password changed; 1 other session signed out.');
    expect(passwordChangedText(3)).toBe('Password changed; 3 other sessions signed out.');
  });
});

/** Chooses `file` in the file input `id`. */
function choose(id: string, file: File) {
  const input = $<HTMLInputElement>(id)!;
  Object.defineProperty(input, 'files', { value: [file], configurable: true });
  input.dispatchEvent(new Event('change', { bubbles: true }));
}

describe('Settings: avatar', () => {
  it('uploads the picture chosen, shows it for me at once, and removes it', async () => {
    const { chat, sent } = open();
    await vi.waitFor(() => expect($('avatar-setting')).not.toBeNull());
    await vi.waitFor(() => expect(chat.state.me?.avatar_url).toBeNull());
    expect($('avatar-remove')).toBeNull();
    chat.store.set({
      members: { r1: [{ user_id: ME, username: 'meg', display_name: 'Meg', role: 'owner', joined_at: null }] },
    });
    const file = new File(['a picture'], 'me.png', { type: 'image/png' });
    choose('avatar-file', file);
    await vi.waitFor(() => expect(text('avatar-result')).toBe('Others now see your new picture.'));
    const put = sent.filter((r) => r.method === 'PUT');
    expect(put).toHaveLength(1);
    expect(put[0]).toMatchObject({ url: '/v1/me/avatar', auth: 'Bearer a1' });
    expect(put[0]!.body).toBe(file);
    const url = `/v1/users/${ME}/avatar?v=a${file.size}`;
    expect(chat.state.me?.avatar_url).toBe(url);
    expect(chat.state.users[ME]?.avatar_url).toBe(url);
    expect(chat.state.members.r1![0]!.avatar_url).toBe(url);
    expect($('avatar-setting')!.querySelector('[data-testid="avatar"]')!.getAttribute('data-avatar-url')).toBe(url);
    // Later reads see it (read-your-writes).
    expect(chat.api.minPosition).toBe(88);

    $<HTMLButtonElement>('avatar-remove')!.click();
    await vi.waitFor(() => expect(text('avatar-result')).toBe('Your picture was removed.'));
    expect(sent.filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual(['/v1/me/avatar']);
    expect(chat.state.me?.avatar_url).toBeNull();
    expect(chat.state.members.r1![0]!.avatar_url).toBeNull();
    expect($('avatar-remove')).toBeNull();
  });

  it("says why a picture was refused, and keeps the one there was", async () => {
    const { chat } = open();
    await vi.waitFor(() => expect($('avatar-setting')).not.toBeNull());
    choose('avatar-file', new File([new Uint8Array(2 * 1024 * 1024 + 1)], 'huge.png', { type: 'image/png' }));
    await vi.waitFor(() => expect(text('avatar-error')).toBe('That image is too large: at most 2 MB.'));
    expect(chat.state.me?.avatar_url ?? null).toBeNull();
  });
});

describe('Settings: display name', () => {
  it('changes it, and shows it for me at once (header, names, members)', async () => {
    const { chat, sent } = open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-display-name')!.value).toBe('Meg'));
    chat.store.set({
      members: {
        r1: [
          { user_id: ME, username: 'meg', display_name: 'Meg', role: 'owner', joined_at: null },
          { user_id: 'u-bob', username: 'bob', display_name: 'Bob', role: 'member', joined_at: null },
        ],
      },
    });
    await type('settings-display-name', ' Megan ');
    submit('settings-display-name-save');
    await vi.waitFor(() => expect(text('display-name-result')).toBe('Others now see you as “Megan”.'));
    expect(sent.filter((r) => r.method === 'PATCH')).toEqual([
      { method: 'PATCH', url: '/v1/me/profile', body: { display_name: 'Megan' }, auth: 'Bearer a1' },
    ]);
    const s = chat.state;
    expect(s.me?.display_name).toBe('Megan');
    expect(s.users[ME]).toEqual({ username: 'meg', display_name: 'Megan', avatar_url: null });
    expect(s.members.r1!.map((m) => m.display_name)).toEqual(['Megan', 'Bob']);
    // Later reads see it (read-your-writes).
    expect(chat.api.minPosition).toBe(77);
  });

  it('empty is the username again', async () => {
    const { chat } = open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-display-name')!.value).toBe('Meg'));
    await type('settings-display-name', '');
    submit('settings-display-name-save');
    await vi.waitFor(() => expect(text('display-name-result')).toBe('Others now see you as “meg”.'));
    expect(chat.state.me?.display_name).toBe('meg');
    // Shown as the username: the field is empty, with the username as its placeholder.
    expect($<HTMLInputElement>('settings-display-name')!.value).toBe('');
    expect($<HTMLInputElement>('settings-display-name')!.placeholder).toBe('meg');
  });

  it('a registration’s session keeps the new name for the next load', async () => {
    const { storage } = open(signedIn({ displayName: 'Meg' }));
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-display-name')!.value).toBe('Meg'));
    await type('settings-display-name', 'Megan');
    submit('settings-display-name-save');
    await vi.waitFor(() => expect(text('display-name-result')).not.toBeNull());
    expect(JSON.parse(storage.getItem(SESSION_KEY)!)).toMatchObject({ displayName: 'Megan', refreshToken: 'r1' });
  });

  it('a name is counted as the server counts it: 64 emoji are allowed, 65 characters are not sent', async () => {
    const { chat, sent } = open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-display-name')!.value).toBe('Meg'));
    await type('settings-display-name', 'x'.repeat(65));
    expect(text('display-name-count')).toBe('65 / 64');
    expect($('display-name-count')!.classList.contains('form-error')).toBe(true);
    expect($<HTMLButtonElement>('settings-display-name-save')!.disabled).toBe(true);
    submit('settings-display-name-save');
    await new Promise((r) => setTimeout(r, 0));
    expect(sent.filter((r) => r.url === '/v1/me/profile')).toEqual([]);
    expect(chat.state.me?.display_name).toBe('Meg');
    // 64 emoji: 128 UTF-16 units, 64 characters.
    const emoji = '🙂'.repeat(64);
    await type('settings-display-name', emoji);
    expect(text('display-name-count')).toBe('64 / 64');
    expect($<HTMLButtonElement>('settings-display-name-save')!.disabled).toBe(false);
    submit('settings-display-name-save');
    await vi.waitFor(() => expect(chat.state.me?.display_name).toBe(emoji));
  });
});

describe('Settings: erase my account', () => {
  const button = () => $<HTMLButtonElement>('settings-erase-submit')!;

  it('says it cannot be undone; the button waits for the username typed again', async () => {
    open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-erase-username')!.disabled).toBe(false));
    const section = $('erase-account')!;
    expect(section.getAttribute('aria-labelledby')).toBe('erase-account-title');
    expect(section.querySelector('#erase-account-title')?.textContent?.trim()).toBe('Erase my account');
    expect(section.textContent).toContain('cannot be undone');
    expect(section.textContent).toContain('“[erased]” for everyone');
    // The field is labelled, and names the username to type.
    expect($('settings-erase-username')!.closest('label')!.textContent).toContain('Type your username, meg, to confirm');
    expect(button().disabled).toBe(true);
    await type('settings-erase-username', 'me');
    expect(button().disabled).toBe(true);
    await type('settings-erase-username', 'Meg');
    expect(button().disabled).toBe(true);
    await type('settings-erase-username', 'meg');
    expect(button().disabled).toBe(false);
    await type('settings-erase-username', '');
    expect(button().disabled).toBe(true);
  });

  it('a disabled button erases nothing, even when the form is submitted', async () => {
    const { sent } = open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-erase-username')!.disabled).toBe(false));
    await type('settings-erase-username', 'not me');
    submit('settings-erase-submit');
    // Then a submit that does send: the one request seen is that one, so the first sent nothing.
    await type('settings-erase-username', 'meg');
    submit('settings-erase-submit');
    await vi.waitFor(() => expect(sent.filter((r) => r.url === '/v1/me/erase')).toHaveLength(1));
    expect(sent.filter((r) => r.url === '/v1/me/erase').map((r) => r.body)).toEqual([{ confirm_username: 'meg' }]);
  });

  it('erases, then signs out here as a logout does (no call to the server), with a notice for the sign-in screen', async () => {
    const { sent, chat, storage } = open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-erase-username')!.disabled).toBe(false));
    await type('settings-erase-username', ' meg ');
    expect(button().disabled).toBe(false);
    submit('settings-erase-submit');
    await vi.waitFor(() => expect(chat.state.session).toBeNull());
    expect(sent.filter((r) => r.url === '/v1/me/erase')).toEqual([
      { method: 'POST', url: '/v1/me/erase', body: { confirm_username: 'meg' }, auth: 'Bearer a1' },
    ]);
    // Every token is refused by now: nothing more is asked, a logout included.
    expect(sent.filter((r) => r.url.startsWith('/v1/auth/'))).toEqual([]);
    expect(chat.api.current).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
    expect(chat.state.me).toBeNull();
    expect(chat.state.signedOutNotice).toBe('Your account was erased.');
    expect($('erase-error')).toBeNull();
  });

  it('a refusal (422 confirmation_mismatch) is shown in the section, still signed in', async () => {
    const { srv, chat } = open();
    await vi.waitFor(() => expect($<HTMLInputElement>('settings-erase-username')!.disabled).toBe(false));
    srv.renameElsewhere('meg2');
    await type('settings-erase-username', 'meg');
    submit('settings-erase-submit');
    await vi.waitFor(() => expect(text('erase-error')).toBe('That is not your username: nothing was erased.'));
    expect($('erase-error')!.getAttribute('role')).toBe('alert');
    expect($('erase-account')!.contains($('erase-error'))).toBe(true);
    expect(chat.api.current?.refreshToken).toBe('r1');
    expect(chat.state.signedOutNotice).toBeNull();
    expect(button().disabled).toBe(false);
  });
});

describe('deviceLabel', () => {
  it('names the browser and the system of a user agent', () => {
    expect(deviceLabel(FIREFOX)).toBe('Firefox on Linux');
    expect(deviceLabel(IPHONE)).toBe('Safari on iOS');
    expect(
      deviceLabel('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0'),
    ).toBe('Edge on Windows');
    expect(
      deviceLabel('Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36'),
    ).toBe('Chrome on Android');
    expect(
      deviceLabel('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15'),
    ).toBe('Safari on macOS');
    expect(deviceLabel('curl/8.5.0')).toBe('curl/8.5.0');
    expect(deviceLabel(null)).toBe('Unknown device');
    expect(deviceLabel('')).toBe('Unknown device');
  });
});
