// bob erases his account through Settings ("Erase my account", ADR 23): the button waits for
// his username typed again; then he is on the sign-in screen, told why, every token of his is
// refused, and what he wrote reads as "[erased]" for alice: live on her open page (the
// `member_updated` frame, no reload), over the API, and in her client after a reload.
// The steps build on each other: once one fails, the rest are skipped.

import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { PASSWORD, uniqueName } from './api';
import { twoPeople } from './people';
import { POLL, chain, count, loginViaUI, message, messages, openRoom, roomItem, sendViaUI, textOf, waitForMessage, waitForRoom } from './ui';

describe('bob erases his account', () => {
    const tag = randomBytes(3).toString('hex');
    const A = { username: uniqueName('alice'), token: '' };
    const B = { username: uniqueName('bob'), displayName: `Bob ${tag}`, token: '' };
    const said = `something bob will take back ${tag}`;
    let room = '';
    let saidId = '';
    const world = twoPeople('erase', {
        seed: async (api) => {
            A.token = (await api.register(A.username)).access_token;
            B.token = (await api.register(B.username, PASSWORD, B.displayName)).access_token;
            room = (await api.createRoom(A.token, `erase-${tag}`, 'public')).room_id;
            await api.join(B.token, room);
        },
    });
    const { step } = chain();

    step('both sign in; bob says something in the room they share, and alice sees it', async () => {
        await loginViaUI(world.alice.page, A.username);
        await loginViaUI(world.bob.page, B.username);
        for (const p of world.both) await openRoom(p.page, room);
        saidId = (await sendViaUI(world.bob.page, said)).id!;
        expect(saidId).toBeTruthy();
        const seen = await waitForMessage(world.alice.page, said, 'alice');
        expect(seen.id).toBe(saidId);
        // Her page's names for him, live, before anything changes.
        await expect
            .poll(async () => (await messages(world.alice.page)).find((m) => m.id === saidId)?.author ?? 'not shown', { ...POLL, message: "bob's name on alice's page" })
            .toContain(B.displayName);
        // Gone after a reload: tells that the next step's checks are made on this very page.
        await world.alice.page.evaluate(() => {
            (window as unknown as { notReloaded?: boolean }).notReloaded = true;
        });
    });

    step('bob types his username to enable "Erase my account", erases it, and ends on the sign-in screen', async () => {
        const page = world.bob.page;
        await page.getByTestId('settings-button').click();
        const input = page.getByTestId('settings-erase-username');
        const erase = page.getByTestId('settings-erase-submit');
        // Enabled once his username is known.
        await expect.poll(() => input.isEnabled(), { ...POLL, message: 'the confirmation field' }).toBe(true);
        expect(await textOf(page.getByTestId('erase-account'))).toContain('cannot be undone');
        expect(await erase.isDisabled()).toBe(true);
        await input.fill(`${B.username}x`);
        expect(await erase.isDisabled()).toBe(true);
        await input.fill(B.username.toUpperCase());
        expect(await erase.isDisabled()).toBe(true);
        await input.fill(B.username);
        await expect.poll(() => erase.isEnabled(), { ...POLL, message: 'the erase button, his username typed' }).toBe(true);

        // A read already on its way when the server ends his sessions meets a refused token.
        world.bob.tolerate(/status of 401/);
        await erase.click();
        await page.getByTestId('auth-username').waitFor({ state: 'visible' });
        await expect.poll(() => textOf(page.getByTestId('auth-notice')), { ...POLL, message: 'the sign-in screen says why' }).toBe(
            'Your account was erased.',
        );
        expect(await count(page.getByTestId('me'))).toBe(0);
        expect(await count(page.getByTestId('settings-dialog'))).toBe(0);
        expect(await page.evaluate(() => localStorage.getItem('chat.session'))).toBeNull();
        world.bob.strict();

        // Every token of his is refused; his username signs nobody in.
        const me = await world.api.request('GET', '/v1/me', { token: B.token });
        expect(me.status).toBe(401);
        expect(me.body?.error?.code).toBe('token_revoked');
        const login = await world.api.request('POST', '/v1/auth/login', { body: { username: B.username, password: PASSWORD } });
        expect(login.status).toBe(401);

        // Still signed out after a reload (the notice was for the moment only).
        await page.reload();
        await page.getByTestId('auth-username').waitFor({ state: 'visible' });
        expect(await count(page.getByTestId('me'))).toBe(0);
    });

    step('alice\'s open page shows bob\'s message and name as "[erased]" at once, without a reload', async () => {
        const page = world.alice.page;
        const row = async () => (await messages(page)).find((m) => m.id === saidId);
        await expect.poll(async () => (await row())?.body?.trim() ?? 'not shown', { ...POLL, message: "bob's message on alice's open page" }).toBe('[erased]');
        await expect.poll(async () => (await row())?.author ?? 'not shown', { ...POLL, message: "bob's name on alice's open page" }).toContain('[erased]');
        const author = (await row())!.author;
        expect(author).not.toContain(B.displayName);
        expect(author).not.toContain(B.username);
        // The room list's last message (his) too.
        await expect
            .poll(() => textOf(roomItem(page, room).getByTestId('room-last-message')), { ...POLL, message: "the room's last message in alice's list" })
            .toBe('[erased]: [erased]');
        expect(await count(message(page, said))).toBe(0);
        const shown = await page.locator('body').innerText();
        expect(shown).not.toContain(said);
        expect(shown).not.toContain(B.displayName);
        expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    });

    step('alice sees bob\'s message as "[erased]", over the API and in her client after a reload', async () => {
        await expect
            .poll(async () => (await world.api.messages(A.token, room, { limit: 20 })).messages.find((m: any) => m.message_id === saidId)?.body, {
                ...POLL,
                message: "bob's message over the API",
            })
            .toBe('[erased]');
        const page = world.alice.page;
        await page.reload();
        await waitForRoom(page, room);
        const row = async () => (await messages(page)).find((m) => m.id === saidId);
        await expect.poll(async () => (await row())?.body?.trim() ?? 'not shown', { ...POLL, message: "bob's message in alice's client" }).toBe('[erased]');
        const author = (await row())!.author;
        expect(author).toContain('[erased]');
        expect(author).not.toContain(B.displayName);
        expect(author).not.toContain(B.username);
        expect(await count(message(page, said))).toBe(0);
        expect(await page.locator('body').innerText()).not.toContain(said);
    });
});
