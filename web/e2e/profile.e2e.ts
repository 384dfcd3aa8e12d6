// Pictures and retention, alice and bob in a public room of alice's. Retention: alice, the
// owner, keeps the room's messages for a period of her choosing, which stays after a reload;
// bob, a member, is given no control until alice makes him an admin in her members panel, then his choice
// reaches her page live. (Expiry itself takes a day at least: the Rust tests cover it.)
// Pictures: alice chooses one in Settings and sees the server's square of it; bob's open page
// shows it beside her message and in the member list at once, then her next one, then her
// initial again once she removes it, never reloading. The first step (both signed in, in the
// room) is needed by all; the retention features stand alone; the picture steps build on
// each other.

import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import type { Locator, Page, Route } from 'playwright-core';
import { type Session, uniqueName } from './api';
import { png } from './images';
import { twoPeople } from './people';
import { POLL, attrNow, chain, count, loginViaUI, message, openRoom, sendViaUI, textOf, waitForMessage, waitForRoom } from './ui';

/** The server's avatars: a square cut from the middle, at most this many pixels a side. */
const AVATAR_SIDE = 256;

/**
 * What an avatar (`[data-testid=avatar]`) shows now: `picture W×H` once its image has loaded
 * (its natural size), `picture not loaded` before, `initial X` without one, `no avatar`.
 */
async function shown(avatar: Locator): Promise<string> {
    const all = await avatar.evaluateAll((els) =>
        els.map((el) => {
            const img = el.querySelector<HTMLImageElement>('img[data-testid="avatar-image"]');
            if (!img) return `initial ${(el.textContent ?? '').trim()}`;
            return img.complete && img.naturalWidth > 0 ? `picture ${img.naturalWidth}×${img.naturalHeight}` : 'picture not loaded';
        }),
    );
    if (all.length > 1) return `${all.length} avatars`;
    return all[0] ?? 'no avatar';
}

/** The picture URL an avatar shows (`data-avatar-url`), with what it shows. */
async function shownWithUrl(avatar: Locator): Promise<string> {
    return `${(await attrNow(avatar, 'data-avatar-url')) ?? '(no url)'}: ${await shown(avatar)}`;
}

function memberAvatar(page: Page, userId: string): Locator {
    return page.locator(`[data-testid="member-item"][data-user-id="${userId}"]`).getByTestId('avatar');
}

async function openMembers(page: Page): Promise<void> {
    const button = page.getByTestId('members-button');
    if ((await button.getAttribute('aria-expanded')) !== 'true') await button.click();
    await page.getByTestId('member-item').first().waitFor({ state: 'visible' });
}

/**
 * Runs `f` while the page's reads of its rooms (`GET /v1/rooms`, `GET /v1/rooms/{id}`: the
 * client's poll every few seconds, a room's reload) are held back, then lets them through:
 * what the page shows meanwhile came over its live feed.
 */
async function withRoomReadsHeld(page: Page, f: () => Promise<void>): Promise<void> {
    const held: Route[] = [];
    const isRoomRead = (url: URL) => /^\/v1\/rooms(\/[^/]+)?$/.test(url.pathname) && url.pathname !== '/v1/rooms/public';
    const hold = (route: Route) => {
        if (route.request().method() === 'GET') held.push(route);
        else void route.continue();
    };
    await page.route(isRoomRead, hold);
    try {
        await f();
    } finally {
        await page.unroute(isRoomRead, hold);
        for (const route of held) await route.continue().catch(() => {});
    }
}

/** Marks the page; `notReloaded` tells later that the checks were made on this very page. */
async function markNotReloaded(page: Page): Promise<void> {
    await page.evaluate(() => {
        (window as unknown as { notReloaded?: boolean }).notReloaded = true;
    });
}

function notReloaded(page: Page): Promise<boolean | undefined> {
    return page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded);
}

describe('pictures and retention', () => {
    let A: Session;
    let B: Session;
    const tag = randomBytes(3).toString('hex');
    const aliceName = `Alice ${tag}`;
    const bobName = `Bob ${tag}`;
    const hello = `hello, this is alice ${tag}`;
    let room = '';

    // A server default a member is told, and the owner sees named beside "Server default".
    const world = twoPeople('profile', {
        env: { APP_RETENTION_DAYS: '365' },
        seed: async (api) => {
            A = await api.register(uniqueName('alice'), undefined, aliceName);
            B = await api.register(uniqueName('bob'), undefined, bobName);
            room = (await api.createRoom(A.access_token, `profile-${tag}`, 'public')).room_id;
            await api.join(B.access_token, room);
        },
    });
    const { step, feature } = chain();

    /** The room's row in `GET /v1/rooms`, as `token`'s owner reads it. */
    const roomRow = async (token: string) => (await world.api.rooms(token)).find((r) => r.room_id === room);

    step('both sign in and open the room; alice says hello and bob sees it', async () => {
        await loginViaUI(world.alice.page, A.username);
        await loginViaUI(world.bob.page, B.username);
        for (const p of world.both) await openRoom(p.page, room);
        await sendViaUI(world.alice.page, hello);
        await waitForMessage(world.bob.page, hello, 'bob');
    });

    feature('alice, the owner, keeps the room\'s messages for 30 days; the choice stays after a reload', async () => {
        const page = world.alice.page;
        await waitForRoom(page, room);
        const select = page.getByTestId('retention');
        await select.waitFor({ state: 'visible' });
        expect(await select.inputValue()).toBe('');
        expect(await select.locator('option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value))).toEqual(['', '1', '7', '30', '90', '365']);
        // The server's default (APP_RETENTION_DAYS, from GET /v1/server) is named; bob, a
        // member, is told it while the room has no period of its own.
        await expect.poll(() => textOf(select.locator('option').first()), { ...POLL, message: 'the default option' }).toBe('Server default (365 days)');
        await expect.poll(() => textOf(world.bob.page.getByTestId('retention-note')), { ...POLL, message: "the server's period on bob's page" }).toBe('Messages kept 365 days');
        expect((await roomRow(A.access_token))?.retention_days ?? null).toBeNull();

        await select.selectOption('30');
        await expect.poll(async () => (await roomRow(A.access_token))?.retention_days, { ...POLL, message: 'retention_days in GET /v1/rooms' }).toBe(30);
        await expect.poll(() => select.isEnabled(), { ...POLL, message: 'the select, once the server answered' }).toBe(true);
        expect(await select.inputValue()).toBe('30');

        await page.reload();
        await waitForRoom(page, room);
        await expect.poll(() => page.getByTestId('retention').inputValue(), { ...POLL, message: 'the period after a reload' }).toBe('30');
    });

    feature('bob, a member, has no retention control; made an admin in alice\'s members panel he gets it live, and his choice reaches alice live', async () => {
        const alice = world.alice.page;
        const bob = world.bob.page;
        for (const p of world.both) await waitForRoom(p.page, room);
        await expect.poll(() => alice.getByTestId('retention').inputValue(), POLL).toBe('30');
        for (const p of [alice, bob]) await markNotReloaded(p);

        // His header is there (the notification level beside which it would be); the control is not.
        await bob.getByTestId('notification-level').waitFor({ state: 'visible' });
        expect(await count(bob.getByTestId('retention'))).toBe(0);
        // He is told the room's own period, though.
        await expect.poll(() => textOf(bob.getByTestId('retention-note')), { ...POLL, message: "the period on bob's page" }).toBe('Messages kept 30 days');
        expect((await roomRow(B.access_token))?.role).toBe('member');
        // Nor would the server take it from him.
        const refused = await world.api.request('PUT', `/v1/rooms/${room}/retention`, { token: B.access_token, body: { days: 1 } });
        expect(refused.status).toBe(403);

        // Each change below shows on the other page over its live feed: its room reads are held.
        const bobs = bob.getByTestId('retention');
        await withRoomReadsHeld(bob, async () => {
            // alice, the owner, makes him an admin in her members panel.
            await alice.getByTestId('members-button').click();
            const bobThere = alice.locator(`[data-testid=member-item][data-user-id="${B.user_id}"]`);
            expect(await textOf(bobThere.getByTestId('role-toggle'))).toBe('Make admin');
            await bobThere.getByTestId('role-toggle').click();
            await expect.poll(() => textOf(bobThere.getByTestId('role-toggle')), { ...POLL, message: "the toggle on alice's panel" }).toBe('Make member');
            expect(await textOf(bobThere.locator('.role'))).toBe('admin');
            await alice.getByRole('button', { name: 'Close members' }).click();
            await expect.poll(() => count(bobs), { ...POLL, message: "the retention control on bob's page, now he is an admin" }).toBe(1);
        });
        expect((await roomRow(B.access_token))?.role).toBe('admin');
        // He is not the owner: he has no role toggle of his own.
        await bob.getByTestId('members-button').click();
        await bob.locator('[data-testid=member-item]').first().waitFor({ state: 'visible' });
        expect(await count(bob.getByTestId('role-toggle'))).toBe(0);
        await bob.getByRole('button', { name: 'Close members' }).click();
        expect(await bobs.inputValue()).toBe('30');

        await withRoomReadsHeld(alice, async () => {
            await bobs.selectOption('7');
            await expect.poll(() => alice.getByTestId('retention').inputValue(), { ...POLL, message: "bob's choice on alice's open page" }).toBe('7');
        });
        await expect.poll(async () => (await roomRow(A.access_token))?.retention_days, { ...POLL, message: 'retention_days in GET /v1/rooms' }).toBe(7);

        // Back to the server's default, from alice's side.
        await withRoomReadsHeld(bob, async () => {
            await alice.getByTestId('retention').selectOption('');
            await expect.poll(() => bobs.inputValue(), { ...POLL, message: "alice's choice on bob's open page" }).toBe('');
        });
        await expect.poll(async () => (await roomRow(A.access_token))?.retention_days ?? null, { ...POLL, message: 'retention_days in GET /v1/rooms' }).toBeNull();
        for (const p of [alice, bob]) expect(await notReloaded(p)).toBe(true);
    });

    // ------------------------------------------------------------- pictures ----

    let firstUrl = '';

    step('alice chooses a picture in Settings and sees the server\'s square of it', async () => {
        const page = world.alice.page;
        const bob = world.bob.page;
        for (const p of world.both) await waitForRoom(p.page, room);
        // Before: initials everywhere, on both pages.
        await openMembers(bob);
        await expect.poll(() => shown(memberAvatar(bob, A.user_id)), { ...POLL, message: "alice in bob's member list" }).toBe('initial A');
        expect(await shown(message(bob, hello).getByTestId('avatar'))).toBe('initial A');
        expect(await shown(message(page, hello).getByTestId('avatar'))).toBe('initial A');
        expect(await count(page.getByTestId('me').getByTestId('avatar'))).toBe(0);
        await markNotReloaded(bob);

        await page.getByTestId('settings-button').click();
        const setting = page.getByTestId('avatar-setting');
        await expect.poll(() => shown(setting.getByTestId('avatar')), { ...POLL, message: 'her avatar in Settings' }).toBe('initial A');
        expect(await count(page.getByTestId('avatar-remove'))).toBe(0);

        // 400×300: the server keeps the middle 300×300, shrunk to 256×256.
        await page.getByTestId('avatar-file').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(400, 300) });
        await expect.poll(async () => (await world.api.me(A.access_token)).avatar_url ?? null, { ...POLL, message: 'avatar_url in GET /v1/me' }).toMatch(
            new RegExp(`^/v1/users/${A.user_id}/avatar\\?v=`),
        );
        firstUrl = (await world.api.me(A.access_token)).avatar_url!;
        await expect.poll(() => textOf(page.getByTestId('avatar-result')), { ...POLL, message: 'what Settings says' }).toBe('Others now see your new picture.');
        const square = `picture ${AVATAR_SIDE}×${AVATAR_SIDE}`;
        await expect.poll(() => shownWithUrl(setting.getByTestId('avatar')), { ...POLL, message: 'her picture in Settings' }).toBe(`${firstUrl}: ${square}`);
        expect(await count(page.getByTestId('avatar-remove'))).toBe(1);
        await page.getByTestId('settings-close').click();
        await expect.poll(() => count(page.getByTestId('settings-dialog')), POLL).toBe(0);

        // Beside her name in the header, and beside her message.
        await expect.poll(() => shownWithUrl(page.getByTestId('me').getByTestId('avatar')), { ...POLL, message: 'her picture in the header' }).toBe(`${firstUrl}: ${square}`);
        await expect.poll(() => shownWithUrl(message(page, hello).getByTestId('avatar')), { ...POLL, message: 'her picture beside her message' }).toBe(`${firstUrl}: ${square}`);
    });

    step("bob's open page shows alice's picture at once, in the member list and beside her message", async () => {
        const bob = world.bob.page;
        const square = `picture ${AVATAR_SIDE}×${AVATAR_SIDE}`;
        await expect.poll(() => shownWithUrl(memberAvatar(bob, A.user_id)), { ...POLL, message: "alice's picture in bob's member list" }).toBe(`${firstUrl}: ${square}`);
        await expect.poll(() => shownWithUrl(message(bob, hello).getByTestId('avatar')), { ...POLL, message: "alice's picture beside her message on bob's page" }).toBe(
            `${firstUrl}: ${square}`,
        );
        // His own has not changed.
        expect(await shown(memberAvatar(bob, B.user_id))).toBe('initial B');
        expect(await notReloaded(bob)).toBe(true);
    });

    step('alice chooses another picture; bob sees the new one at once', async () => {
        const page = world.alice.page;
        const bob = world.bob.page;
        await page.getByTestId('settings-button').click();
        // 90×60: smaller than the server's side, so kept at 60×60.
        await page.getByTestId('avatar-file').setInputFiles({ name: 'other.png', mimeType: 'image/png', buffer: png(90, 60) });
        await expect.poll(async () => (await world.api.me(A.access_token)).avatar_url ?? null, { ...POLL, message: 'a new avatar_url in GET /v1/me' }).not.toBe(firstUrl);
        const secondUrl = (await world.api.me(A.access_token)).avatar_url!;
        expect(secondUrl).toMatch(new RegExp(`^/v1/users/${A.user_id}/avatar\\?v=`));
        await expect.poll(() => shownWithUrl(page.getByTestId('avatar-setting').getByTestId('avatar')), { ...POLL, message: 'her new picture in Settings' }).toBe(
            `${secondUrl}: picture 60×60`,
        );
        await page.getByTestId('settings-close').click();

        await expect.poll(() => shownWithUrl(memberAvatar(bob, A.user_id)), { ...POLL, message: "alice's new picture in bob's member list" }).toBe(`${secondUrl}: picture 60×60`);
        await expect.poll(() => shownWithUrl(message(bob, hello).getByTestId('avatar')), { ...POLL, message: "alice's new picture beside her message on bob's page" }).toBe(
            `${secondUrl}: picture 60×60`,
        );
        expect(await notReloaded(bob)).toBe(true);
    });

    step('alice removes her picture: her initial shows again, for her and at once for bob', async () => {
        const page = world.alice.page;
        const bob = world.bob.page;
        await page.getByTestId('settings-button').click();
        await page.getByTestId('avatar-remove').click();
        await expect.poll(() => textOf(page.getByTestId('avatar-result')), { ...POLL, message: 'what Settings says' }).toBe('Your picture was removed.');
        expect(await count(page.getByTestId('avatar-remove'))).toBe(0);
        expect(await shownWithUrl(page.getByTestId('avatar-setting').getByTestId('avatar'))).toBe('(no url): initial A');
        await expect.poll(async () => (await world.api.me(A.access_token)).avatar_url ?? null, { ...POLL, message: 'avatar_url in GET /v1/me' }).toBeNull();
        await page.getByTestId('settings-close').click();
        expect(await count(page.getByTestId('me').getByTestId('avatar'))).toBe(0);
        expect(await shownWithUrl(message(page, hello).getByTestId('avatar'))).toBe('(no url): initial A');

        await expect.poll(() => shownWithUrl(memberAvatar(bob, A.user_id)), { ...POLL, message: "alice's initial in bob's member list" }).toBe('(no url): initial A');
        await expect.poll(() => shownWithUrl(message(bob, hello).getByTestId('avatar')), { ...POLL, message: "alice's initial beside her message on bob's page" }).toBe(
            '(no url): initial A',
        );
        expect(await notReloaded(bob)).toBe(true);
    });
});
