import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Api } from './api';
import { Chat } from './chat';
import { emptyTimeline } from './state/timeline';
import { TYPING_SEND_MS } from './state/typing';

/** Just what typing and sending use of the API; typing notices go over REST (no socket here). */
function fakeApi(sendAnswer: () => Promise<unknown>) {
  const typed: string[] = [];
  const api = {
    current: null,
    onSession: () => undefined,
    request: async (_method: string, path: string) => {
      if (path.endsWith('/typing')) typed.push(path);
    },
    send: sendAnswer,
  };
  return { api: api as unknown as Api, typed };
}

function chatIn(roomId: string, api: Api): Chat {
  const chat = new Chat(api);
  chat.store.set({ timelines: { [roomId]: { tl: emptyTimeline(), loading: false, loadingOlder: false, loadingNewer: false, error: null } } });
  return chat;
}

/** Lets the send's promise chain settle (only Date is faked). */
const settle = () => new Promise((r) => setTimeout(r, 0));

describe('Chat: typing notices', () => {
  const t0 = Date.UTC(2026, 0, 1, 10);
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(t0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('typing again right after a sent message tells the room at once', async () => {
    const { api, typed } = fakeApi(async () => ({ message_id: 'm1', seq: 1, version: 2, position: 10 }));
    const chat = chatIn('r1', api);
    chat.typing('r1');
    vi.setSystemTime(t0 + 1_000);
    chat.typing('r1');
    expect(typed).toHaveLength(1);

    chat.send('r1', 'hello', null);
    await settle();
    expect(chat.state.timelines.r1!.tl.messages.map((m) => m.body)).toEqual(['hello']);

    vi.setSystemTime(t0 + 1_500);
    chat.typing('r1');
    expect(typed).toHaveLength(2);
    // ...and the throttle holds again from there.
    vi.setSystemTime(t0 + 2_000);
    chat.typing('r1');
    expect(typed).toHaveLength(2);
    vi.setSystemTime(t0 + 1_500 + TYPING_SEND_MS);
    chat.typing('r1');
    expect(typed).toHaveLength(3);
  });

  it('a message that failed to send leaves the throttle as it was', async () => {
    const { api, typed } = fakeApi(async () => {
      throw new Error('offline');
    });
    const chat = chatIn('r1', api);
    chat.typing('r1');
    chat.send('r1', 'hello', null);
    await settle();
    expect(chat.state.timelines.r1!.tl.pending.map((p) => p.status)).toEqual(['failed']);
    vi.setSystemTime(t0 + 1_000);
    chat.typing('r1');
    expect(typed).toHaveLength(1);
  });
});
