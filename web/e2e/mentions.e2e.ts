// Mentions, read receipts and notification levels, alice and bob in one room of bob's: a
// mention shows as a badge on alice's room list before she opens the room; once she reads
// it, bob sees "Seen by" her under his message; after she keeps her receipts private, what
// she reads next is not shown to him. The first steps build on each other (`step`); the
// features after them stand alone.

import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { type Session, uniqueName } from './api';
import { twoPeople } from './people';
import {
    POLL,
    attrNow,
    chain,
    count,
    loginViaUI,
    message,
    messageBySeq,
    openRoom,
    roomItem,
    sendViaUI,
    textOf,
    waitForMessage,
    waitForRoom,
} from './ui';

interface RoomRow {
    room_id: string;
    read_seq: number;
    unread_mentions?: number;
    notifications?: string;
}

describe('mentions, read receipts and notification levels', () => {
    let A: Session;
    let B: Session;
    const tag = randomBytes(3).toString('hex');
    const aliceName = `Alice ${tag}`;
    const roomName = `mentions-${tag}`;
    let room = '';
    const mention = { body: '', seq: 0, id: '' };

    const world = twoPeople('mentions', {
        seed: async (api) => {
            A = await api.register(uniqueName('alice'), undefined, aliceName);
            B = await api.register(uniqueName('bob'), undefined, `Bob ${tag}`);
            room = (await api.createRoom(B.access_token, roomName, 'public')).room_id;
            await api.join(A.access_token, room);
        },
    });
    const { step, feature } = chain();

    /** alice's row for the room in `GET /v1/rooms` (her own session, not the page's). */
    const aliceRoom = async (): Promise<RoomRow | undefined> =>
        ((await world.api.rooms(A.access_token)) as RoomRow[]).find((r) => r.room_id === room);

    /** Who bob's page shows as having seen his message `body` (user ids), or null for no line. */
    const seenOnBobsPage = (body: string) => attrNow(message(world.bob.page, body).getByTestId('message-seen-by'), 'data-user-ids');

    step('both log in; the room is in both lists; bob opens it, alice does not', async () => {
        await loginViaUI(world.alice.page, A.username);
        await loginViaUI(world.bob.page, B.username);
        for (const p of world.both) {
            await expect.poll(() => count(roomItem(p.page, room)), { ...POLL, timeout: 25_000, message: `the room in ${p.name}'s list` }).toBe(1);
        }
        await openRoom(world.bob.page, room);
        expect(await attrNow(roomItem(world.alice.page, room), 'aria-current')).not.toBe('page');
        expect(await count(roomItem(world.alice.page, room).getByTestId('room-mentions'))).toBe(0);
    });

    step('bob mentions alice: her room list shows the mention badge', async () => {
        mention.body = `hey @${A.username}, have a look ${tag}`;
        const sent = await sendViaUI(world.bob.page, mention.body);
        mention.seq = sent.seq!;
        mention.id = sent.id!;
        // bob's page emphasises the name
        expect(await textOf(message(world.bob.page, mention.body).getByTestId('mention'))).toBe(`@${A.username}`);

        const item = roomItem(world.alice.page, room);
        await expect.poll(() => textOf(item.getByTestId('room-mentions')), { ...POLL, message: "alice's mention badge" }).toBe('@1');
        expect(await textOf(item.getByTestId('room-unread'))).toBe('1');
        // the server counts it too
        await expect.poll(async () => (await aliceRoom())?.unread_mentions, { ...POLL, message: 'unread_mentions in GET /v1/rooms' }).toBe(1);
    });

    step('alice opens the room and reads it: the badge clears, and bob sees "Seen by" her', async () => {
        await openRoom(world.alice.page, room);
        await waitForMessage(world.alice.page, mention.body, 'alice');
        expect(await attrNow(messageBySeq(world.alice.page, mention.seq), 'data-mention-me')).toBe('true');
        await expect.poll(() => count(roomItem(world.alice.page, room).getByTestId('room-mentions')), { ...POLL, message: 'the mention badge clears' }).toBe(0);
        await expect.poll(async () => (await aliceRoom())?.read_seq, { ...POLL, message: "alice's read_seq" }).toBe(mention.seq);

        await expect.poll(() => seenOnBobsPage(mention.body), { ...POLL, message: 'bob sees alice under his message' }).toBe(A.user_id);
        expect(await textOf(message(world.bob.page, mention.body).getByTestId('message-seen-by'))).toContain(aliceName);
    });

    step('alice keeps her receipts private: what she reads next is not shown to bob', async () => {
        await world.alice.page.getByTestId('settings-button').click();
        const toggle = world.alice.page.getByTestId('private-receipts-toggle');
        await toggle.waitFor({ state: 'visible' });
        expect(await toggle.isChecked()).toBe(false);
        await toggle.check();
        await expect.poll(async () => (await world.api.me(A.access_token)).private_receipts, { ...POLL, message: 'private_receipts in GET /v1/me' }).toBe(true);
        expect(await toggle.isChecked()).toBe(true);
        await world.alice.page.getByTestId('settings-close').click();
        await expect.poll(() => count(world.alice.page.getByTestId('settings-dialog')), POLL).toBe(0);

        const second = `a second one ${tag}`;
        const sent = await sendViaUI(world.bob.page, second);
        // alice, looking at the room, reads it as it arrives
        await waitForMessage(world.alice.page, second, 'alice');
        await expect.poll(async () => (await aliceRoom())?.read_seq, { ...POLL, message: "alice's read_seq reaches bob's second message" }).toBe(sent.seq);
        // Anything the feed told bob about that read came before alice's answer: once he has
        // the answer, his page shows whatever it will ever show.
        await sendViaUI(world.alice.page, `got it ${tag}`);
        await waitForMessage(world.bob.page, `got it ${tag}`, 'bob');
        expect((await seenOnBobsPage(second)) ?? '').not.toContain(A.user_id);
        expect((await world.api.receipts(B.access_token, room)).map((r) => r.user_id)).not.toContain(A.user_id);
    });

    feature('alice chooses to hear of every message in the room', async () => {
        await waitForRoom(world.alice.page, room);
        const select = world.alice.page.getByTestId('notification-level');
        expect(await select.inputValue()).toBe('mentions');
        await select.selectOption('all');
        await expect.poll(async () => (await aliceRoom())?.notifications, { ...POLL, message: 'notifications in GET /v1/rooms' }).toBe('all');
        expect(await select.inputValue()).toBe('all');
        // it stays so after a reload
        await world.alice.page.reload();
        await waitForRoom(world.alice.page, room);
        await expect.poll(() => world.alice.page.getByTestId('notification-level').inputValue(), POLL).toBe('all');
    });

    feature('the mentions panel lists the mention; a click opens it in its room', async () => {
        await world.alice.page.getByTestId('mentions-button').click();
        const result = world.alice.page.locator(`[data-testid="mention-result"][data-message-id="${mention.id}"]`);
        await result.waitFor({ state: 'visible' });
        expect(await textOf(result)).toContain(`have a look ${tag}`);
        await result.click();
        await waitForRoom(world.alice.page, room);
        expect(await count(world.alice.page.getByTestId('mentions-panel'))).toBe(0);
        await expect
            .poll(() => attrNow(messageBySeq(world.alice.page, mention.seq), 'data-highlighted'), { ...POLL, message: 'the message is highlighted' })
            .toBe('true');
    });
});
