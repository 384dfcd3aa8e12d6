// The login screen's single sign-on button, the notice of why one was signed out, and the
// display name's limit when registering.

import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeServerChat, json } from '../testing';
import { AuthScreen } from './Auth';
import { ChatContext } from './context';

let host: HTMLElement;
afterEach(() => {
  render(null, host);
  host.remove();
  vi.restoreAllMocks();
});

function mount(oidc: () => unknown) {
  const t = fakeServerChat((r) => (r.url === '/v1/auth/oidc' ? oidc() : json(404, { error: { code: 'not_found', message: r.url } })));
  const info = vi.spyOn(t.api, 'ssoInfo');
  host = document.createElement('div');
  document.body.appendChild(host);
  render(
    <ChatContext.Provider value={t.chat}>
      <AuthScreen />
    </ChatContext.Provider>,
    host,
  );
  return { ...t, info };
}

const button = () => host.querySelector<HTMLButtonElement>('[data-testid="auth-sso"]');

/** Waits until the screen has the answer to its `GET /v1/auth/oidc` and has rendered it. */
async function answered(t: ReturnType<typeof mount>) {
  await vi.waitFor(() => expect(t.info.mock.results).toHaveLength(1));
  await act(async () => {
    await t.info.mock.results[0].value.catch(() => undefined);
  });
}

describe('AuthScreen: single sign-on', () => {
  it('offers the provider by name; the button navigates to /v1/auth/oidc/start', async () => {
    const assign = vi.spyOn(window.location, 'assign').mockImplementation(() => undefined);
    const { sent } = mount(() => ({ enabled: true, name: 'Example ID' }));
    await vi.waitFor(() => expect(button()?.textContent).toBe('Sign in with Example ID'));
    expect(sent).toEqual([{ method: 'GET', url: '/v1/auth/oidc', body: undefined, auth: undefined }]);
    button()!.click();
    expect(assign).toHaveBeenCalledWith('/v1/auth/oidc/start');
  });

  it('a provider without a name is "single sign-on"', async () => {
    mount(() => ({ enabled: true, name: null }));
    await vi.waitFor(() => expect(button()?.textContent).toBe('Sign in with single sign-on'));
  });

  it('no button when it is not offered, or the server does not say', async () => {
    const off = mount(() => ({ enabled: false, name: null }));
    await answered(off);
    expect(button()).toBeNull();
    render(null, host);
    host.remove();
    const old = mount(() => json(404, { error: { code: 'not_found', message: 'no such route' } }));
    await answered(old);
    expect(button()).toBeNull();
    expect(host.querySelector('[data-testid="auth-submit"]')).not.toBeNull();
  });
});

describe('AuthScreen: why one was signed out', () => {
  const notice = () => host.querySelector<HTMLElement>('[data-testid="auth-notice"]');

  it('shows the notice (an erased account) as a status, until the next sign-in', async () => {
    const t = mount(() => ({ enabled: false, name: null }));
    expect(notice()).toBeNull();
    t.chat.store.set({ signedOutNotice: 'Your account was erased.' });
    await vi.waitFor(() => expect(notice()?.textContent).toBe('Your account was erased.'));
    expect(notice()!.getAttribute('role')).toBe('status');
    t.api.signInWithTokens({ user_id: 'u1', access_token: 'a1', refresh_token: 'r1', expires_in: 900, token_type: 'Bearer' });
    t.chat.stop();
    expect(t.chat.state.signedOutNotice).toBeNull();
  });
});

describe('AuthScreen: registering', () => {
  const $ = <E extends Element = HTMLElement>(id: string) => host.querySelector<E & Element>(`[data-testid="${id}"]`);
  async function type(id: string, value: string) {
    const input = $<HTMLInputElement>(id)!;
    input.value = value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    await new Promise((r) => setTimeout(r, 0));
  }

  it('counts the display name as the server does and does not send one too long', async () => {
    const t = mount(() => ({ enabled: false, name: null }));
    await answered(t);
    $<HTMLButtonElement>('auth-mode-toggle')!.click();
    await new Promise((r) => setTimeout(r, 0));
    await type('auth-username', 'meg');
    await type('auth-password', 'correct horse battery');
    // 64 emoji are 64 characters (128 UTF-16 units): allowed.
    await type('auth-display-name', '🙂'.repeat(64));
    expect($('auth-display-name-count')?.textContent).toBe('64 / 64');
    expect($<HTMLButtonElement>('auth-submit')!.disabled).toBe(false);
    await type('auth-display-name', '🙂'.repeat(65));
    expect($('auth-display-name-count')?.textContent).toBe('65 / 64');
    expect($<HTMLButtonElement>('auth-submit')!.disabled).toBe(true);
    $<HTMLButtonElement>('auth-submit')!.closest('form')!.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
    await new Promise((r) => setTimeout(r, 0));
    expect(t.sent.filter((r) => r.url === '/v1/auth/register')).toEqual([]);
  });
});
