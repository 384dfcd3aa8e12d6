// The picture beside a name: read with the client's token, tried again after a failure that
// may pass (not after a 404), the initial meanwhile.

import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api';
import type { Chat } from '../chat';
import { Avatar, RETRY_MS } from './Avatar';
import { ChatContext } from './context';

let n = 0;
/** A picture URL no earlier test fetched (the component keeps each picture for the page's life). */
const fresh = () => `/v1/users/u${++n}/avatar?v=a${n}`;

function mount(chat: Pick<Chat, 'avatar'>, url: string) {
  const root = document.createElement('div');
  document.body.append(root);
  // Inside act: the effect that fetches runs before act returns.
  act(() => {
    render(
      <ChatContext.Provider value={chat as Chat}>
        <Avatar url={url} name="bob" />
      </ChatContext.Provider>,
      root,
    );
  });
  return root;
}

const shown = (root: HTMLElement) => root.querySelector('[data-testid=avatar-image]')?.getAttribute('src') ?? root.textContent;

/** Lets the fetch's promise chain and the timers due by `ms` run. */
async function after(ms: number) {
  await act(async () => {
    await vi.advanceTimersByTimeAsync(ms);
  });
}

describe('Avatar', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    let objects = 0;
    URL.createObjectURL = () => `blob:picture-${++objects}`;
  });
  afterEach(() => {
    vi.useRealTimers();
    document.body.innerHTML = '';
  });

  it('shows the initial until the picture is read, and tries again after a failure that may pass', async () => {
    const avatar = vi
      .fn<Chat['avatar']>()
      .mockRejectedValueOnce(new ApiError(503, 'unavailable', 'not caught up'))
      .mockRejectedValueOnce(new TypeError('network'))
      .mockResolvedValueOnce(new Blob(['png']));
    const url = fresh();
    const root = mount({ avatar }, url);
    await after(0);
    expect(shown(root)).toBe('B');
    expect(avatar).toHaveBeenCalledTimes(1);
    await after(RETRY_MS[0]!);
    expect(avatar).toHaveBeenCalledTimes(2);
    expect(shown(root)).toBe('B');
    await after(RETRY_MS[1]!);
    expect(avatar).toHaveBeenCalledTimes(3);
    expect(shown(root)).toMatch(/^blob:picture-/);
    expect(avatar).toHaveBeenCalledWith(url);
  });

  it('does not try a picture that is gone (404) again, and gives up after the last wait', async () => {
    const gone = vi.fn<Chat['avatar']>().mockRejectedValue(new ApiError(404, 'avatar_not_found', 'gone'));
    const root = mount({ avatar: gone }, fresh());
    await after(RETRY_MS.reduce((a, b) => a + b, 0) * 2);
    expect(gone).toHaveBeenCalledTimes(1);
    expect(shown(root)).toBe('B');

    const failing = vi.fn<Chat['avatar']>().mockRejectedValue(new ApiError(503, 'unavailable', 'busy'));
    mount({ avatar: failing }, fresh());
    await after(RETRY_MS.reduce((a, b) => a + b, 0) * 2);
    expect(failing).toHaveBeenCalledTimes(1 + RETRY_MS.length);
  });
});
