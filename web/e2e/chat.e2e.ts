// Two people, two browser contexts, one real platform: alice and bob register through the
// UI, meet in a public room and use everything a conversation has, each seeing the other's
// actions live. The first steps (register, room, chat) build on each other: once one fails,
// the rest are skipped. Each feature after them starts from the lobby and stands alone.

import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { PASSWORD, uniqueName } from './api';
import type { Person } from './browser';
import { png } from './images';
import { twoPeople } from './people';
import {
    POLL,
    attrNow,
    browseAndJoin,
    chain,
    count,
    createRoomViaUI,
    loginViaUI,
    message,
    messageAction,
    messageBySeq,
    messageState,
    openRoom,
    registerViaUI,
    roomItem,
    searchUntilShown,
    sendViaUI,
    textOf,
    waitForMessage,
    waitForRoom,
} from './ui';

describe('alice and bob chat in a public room', () => {
    const tag = randomBytes(3).toString('hex');
    const A = { username: uniqueName('alice'), displayName: `Alice ${tag}`, token: '' };
    const B = { username: uniqueName('bob'), displayName: `Bob ${tag}`, token: '' };
    const lobbyName = `lobby-${tag}`;
    const otherName = `bobs-corner-${tag}`;
    let lobby = '';
    let other = '';
    const who = (p: typeof A) => new RegExp(`${p.displayName}|${p.username}`);

    const world = twoPeople('chat');
    const { step, feature } = chain();

    /** Both in the lobby with empty composers, whatever an earlier feature left behind. */
    async function inLobby(): Promise<void> {
        for (const p of world.both) {
            await p.page.keyboard.press('Escape');
            if ((await attrNow(roomItem(p.page, lobby), 'aria-current')) !== 'page') await openRoom(p.page, lobby);
            await p.page.getByTestId('composer').fill('');
        }
    }

    /** A second room of bob's, for being elsewhere than the lobby. */
    async function bobsOtherRoom(): Promise<string> {
        other ||= await createRoomViaUI(world.bob.page, otherName, 'public');
        return other;
    }

    step('alice and bob register through the UI', async () => {
        await world.alice.page.goto('/');
        await world.bob.page.goto('/');
        await registerViaUI(world.alice.page, A.username, { displayName: A.displayName });
        await registerViaUI(world.bob.page, B.username, { displayName: B.displayName });
        // API sessions of their own, to check what the UI did.
        A.token = (await world.api.login(A.username)).access_token;
        B.token = (await world.api.login(B.username)).access_token;
    });

    step('alice creates a public room; bob finds it in the public list and joins', async () => {
        lobby = await createRoomViaUI(world.alice.page, lobbyName, 'public', 'where everyone meets');
        await openRoom(world.alice.page, lobby);
        expect(await textOf(world.alice.page.getByTestId('room-title'))).toContain(lobbyName);
        expect(await browseAndJoin(world.bob.page, lobbyName)).toBe(lobby);
        await openRoom(world.bob.page, lobby);
        expect(world.alice.page.url()).toContain(`#/rooms/${lobby}`);
        expect(world.bob.page.url()).toContain(`#/rooms/${lobby}`);
    });

    step('they chat both ways live, without reloading', async () => {
        const mine = await sendViaUI(world.alice.page, 'hello bob');
        expect(mine.mine).toBe('true');
        const seen = await waitForMessage(world.bob.page, 'hello bob', 'bob');
        expect(seen.mine).toBe('false');
        expect(seen.author).toMatch(who(A));
        expect(seen.seq).toBe(mine.seq);
        expect(seen.id).toBe(mine.id);

        await sendViaUI(world.bob.page, 'hi alice, how are you?');
        const reply = await waitForMessage(world.alice.page, 'hi alice, how are you?', 'alice');
        expect(reply.mine).toBe('false');
        // Bob's name may arrive just after his first message: alice's client loads the
        // names of a room's newcomers from the members list, which the message can beat.
        await expect
            .poll(async () => (await messageState(world.alice.page, 'hi alice, how are you?'))?.author, {
                ...POLL,
                message: 'alice sees who wrote it',
            })
            .toMatch(who(B));

        // Shift+Enter is a new line, not a send.
        const composer = world.alice.page.getByTestId('composer');
        await composer.fill('two');
        await composer.press('Shift+Enter');
        await composer.pressSequentially('lines');
        expect(await composer.inputValue()).toBe('two\nlines');
        await composer.press('Enter');
        await expect.poll(async () => (await world.bob.page.getByTestId('message-body').allTextContents()).some((t) => t.includes('two') && t.includes('lines')), POLL).toBe(true);
    });

    feature('the typing indicator shows on the other side while someone types', async () => {
        await inLobby();
        expect(await count(world.alice.page.getByTestId('typing-indicator'))).toBe(0);
        // bob types the way people do, a key at a time for a few seconds, while alice watches.
        const typing = world.bob.page.getByTestId('composer').pressSequentially('I am typing a longer answer, bear with me', { delay: 100 });
        await expect
            .poll(() => textOf(world.alice.page.getByTestId('typing-indicator')), { ...POLL, message: "alice sees bob's typing indicator" })
            .toMatch(who(B));
        await typing;
        await world.bob.page.getByTestId('composer').fill('');
        await expect
            .poll(() => count(world.alice.page.getByTestId('typing-indicator')), { ...POLL, timeout: 20_000, message: 'the typing indicator goes away' })
            .toBe(0);
    });

    feature('typing again right after sending shows the indicator again', async () => {
        await inLobby();
        const indicator = world.alice.page.getByTestId('typing-indicator');
        const composer = world.bob.page.getByTestId('composer');
        await composer.pressSequentially('quick one', { delay: 30 });
        await expect.poll(() => textOf(indicator), { ...POLL, message: "alice sees bob's typing indicator" }).toMatch(who(B));
        // The message clears the indicator on alice's side...
        await composer.press('Enter');
        await waitForMessage(world.alice.page, 'quick one', 'alice');
        await expect.poll(() => count(indicator), { ...POLL, message: 'the message clears the typing indicator' }).toBe(0);
        // ...and typing again (within 3 s of the last typing notice, most likely) shows it again.
        await composer.pressSequentially('and', { delay: 30 });
        await expect.poll(() => textOf(indicator), { ...POLL, message: "alice sees bob typing again after his message" }).toMatch(who(B));
        await composer.fill('');
    });

    feature('alice edits her message and bob sees the new text marked as edited', async () => {
        await inLobby();
        await sendViaUI(world.alice.page, 'edit me please');
        await waitForMessage(world.bob.page, 'edit me please', 'bob');
        await messageAction(message(world.alice.page, 'edit me please'), 'message-edit');
        const input = world.alice.page.getByTestId('edit-input');
        await input.waitFor({ state: 'visible' });
        expect(await input.inputValue()).toBe('edit me please');
        // Escape cancels...
        await input.fill('never saved');
        await input.press('Escape');
        await expect.poll(() => count(world.alice.page.getByTestId('edit-input')), POLL).toBe(0);
        expect(await count(message(world.alice.page, 'edit me please'))).toBe(1);
        // ...Enter saves.
        await messageAction(message(world.alice.page, 'edit me please'), 'message-edit');
        await input.fill('edited: better words');
        await input.press('Enter');
        for (const p of world.both) {
            await expect
                .poll(async () => {
                    const m = await messageState(p.page, 'edited: better words');
                    return m ? { edited: m.edited } : 'not shown';
                }, { ...POLL, message: `${p.name} sees the edit` })
                .toEqual({ edited: true });
            expect(await count(message(p.page, 'edit me please'))).toBe(0);
        }
    });

    feature('alice deletes a message and both see a tombstone', async () => {
        await inLobby();
        const sent = await sendViaUI(world.alice.page, 'this will be deleted');
        await waitForMessage(world.bob.page, 'this will be deleted', 'bob');
        await messageAction(message(world.alice.page, 'this will be deleted'), 'message-delete');
        for (const p of world.both) {
            const row = messageBySeq(p.page, sent.seq!);
            await expect
                .poll(async () => ((await count(row.getByTestId('message-deleted'))) ? 'tombstone' : `no tombstone: ${await textOf(row)}`), {
                    ...POLL,
                    message: `${p.name} sees the tombstone`,
                })
                .toBe('tombstone');
            expect(await textOf(row)).not.toContain('this will be deleted');
        }
    });

    feature('bob reacts and alice sees the count; her reaction makes it two', async () => {
        await inLobby();
        await sendViaUI(world.alice.page, 'react to this');
        const row = message(world.bob.page, 'react to this');
        await waitForMessage(world.bob.page, 'react to this', 'bob');
        await messageAction(row, 'message-react');
        const option = world.bob.page.getByTestId('reaction-option').first();
        await option.waitFor({ state: 'visible' });
        const emoji = await option.getAttribute('data-emoji');
        expect(emoji, 'reaction-option has data-emoji').toBeTruthy();
        await option.click();
        const reaction = (p: Person) => message(p.page, 'react to this').locator(`[data-testid="reaction"][data-emoji="${emoji}"]`);
        await expect.poll(async () => [await textOf(reaction(world.alice)), await attrNow(reaction(world.alice), 'data-mine')], { ...POLL, message: "alice sees bob's reaction" }).toEqual([
            expect.stringContaining('1'),
            'false',
        ]);
        await expect.poll(() => attrNow(reaction(world.bob), 'data-mine'), POLL).toBe('true');
        // alice adds the same one by clicking it.
        await reaction(world.alice).click();
        for (const p of world.both) {
            await expect.poll(() => textOf(reaction(p)), { ...POLL, message: `${p.name} sees two` }).toContain('2');
        }
        expect(await attrNow(reaction(world.alice), 'data-mine')).toBe('true');
    });

    feature('alice sends an image and a PDF; bob sees the thumbnail and downloads the PDF', async () => {
        await inLobby();
        const caption = `holiday files ${tag}`;
        await world.alice.page.getByTestId('composer').fill(caption);
        await world.alice.page.getByTestId('composer-file').setInputFiles([
            { name: 'beach.png', mimeType: 'image/png', buffer: png(400, 300) },
            { name: 'report.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.7\n' + 'x'.repeat(5000) + '\n%%EOF\n') },
        ]);
        await waitForMessage(world.bob.page, caption, 'bob');
        const row = message(world.bob.page, caption);
        const thumb = row.getByTestId('attachment-thumbnail');
        await expect
            .poll(() => thumb.evaluate((img) => (img as HTMLImageElement).naturalWidth).catch(() => 0), {
                ...POLL,
                message: 'bob sees the image as a thumbnail',
            })
            .toBe(320);
        const file = row.getByTestId('attachment-file');
        expect(await textOf(file)).toContain('report.pdf');
        const [download] = await Promise.all([world.bob.page.waitForEvent('download'), file.click()]);
        expect(download.suggestedFilename()).toBe('report.pdf');
        // The composer is empty again on alice's side: the caption went with the files.
        expect(await world.alice.page.getByTestId('composer').inputValue()).toBe('');
    });

    feature('bob replies to a message and alice sees the quote', async () => {
        await inLobby();
        await sendViaUI(world.alice.page, 'reply to this');
        await waitForMessage(world.bob.page, 'reply to this', 'bob');
        await messageAction(message(world.bob.page, 'reply to this'), 'message-reply');
        const preview = world.bob.page.getByTestId('reply-preview');
        await preview.waitFor({ state: 'visible' });
        expect(await textOf(preview)).toContain('reply to this');
        await sendViaUI(world.bob.page, 'replying to your message');
        await expect.poll(() => count(world.bob.page.getByTestId('reply-preview')), POLL).toBe(0);
        for (const p of world.both) {
            await expect
                .poll(async () => (await messageState(p.page, 'replying to your message'))?.quote ?? 'no quote', { ...POLL, message: `${p.name} sees the quote` })
                .toContain('reply to this');
        }
        // The reply preview can be cancelled.
        await messageAction(message(world.bob.page, 'hi alice, how are you?'), 'message-reply');
        await world.bob.page.getByTestId('reply-cancel').click();
        await expect.poll(() => count(world.bob.page.getByTestId('reply-preview')), POLL).toBe(0);
    });

    feature('an unread badge on the list while elsewhere; opening the room clears it and moves the read marker', async () => {
        await inLobby();
        await openRoom(world.bob.page, await bobsOtherRoom());
        const texts = ['unread one', 'unread two', 'unread three'];
        let last = 0;
        for (const t of texts) last = (await sendViaUI(world.alice.page, t)).seq!;
        const badge = roomItem(world.bob.page, lobby).getByTestId('room-unread');
        await expect.poll(() => textOf(badge), { ...POLL, message: "bob's unread badge for the lobby" }).toBe('3');
        await expect.poll(() => textOf(roomItem(world.bob.page, lobby).getByTestId('room-last-message')), POLL).toContain('unread three');
        // The room he is in has no badge.
        expect(await count(roomItem(world.bob.page, other).getByTestId('room-unread'))).toBe(0);

        await openRoom(world.bob.page, lobby);
        await waitForMessage(world.bob.page, 'unread three', 'bob');
        await expect.poll(() => count(badge), { ...POLL, message: 'the badge clears' }).toBe(0);
        const readSeq = async (token: string) => (await world.api.rooms(token)).find((r) => r.room_id === lobby || r.id === lobby)?.read_seq;
        await expect.poll(() => readSeq(B.token), { ...POLL, message: "bob's read_seq in GET /v1/rooms" }).toBe(last);

        // alice, looking at the room, reads bob's answer as it arrives.
        const answer = await sendViaUI(world.bob.page, 'read them all');
        await waitForMessage(world.alice.page, 'read them all', 'alice');
        await expect.poll(() => readSeq(A.token), { ...POLL, message: "alice's read_seq in GET /v1/rooms" }).toBe(answer.seq);
    });

    feature('an HTML-looking message is shown as literal text', async () => {
        await inLobby();
        const html = '<img src=x onerror=alert(1)><b>bold</b>';
        const requested: string[] = [];
        for (const p of world.both) p.page.on('request', (r) => new URL(r.url()).pathname.endsWith('/x') && requested.push(r.url()));
        await sendViaUI(world.alice.page, html);
        await waitForMessage(world.bob.page, html, 'bob');
        for (const p of world.both) {
            const body = message(p.page, html).getByTestId('message-body');
            expect(await body.evaluate((el) => el.textContent)).toBe(html);
            expect(await body.locator('img, b, script').count()).toBe(0);
        }
        expect(requested).toEqual([]);
        // A dialog (alert) would be reported by watchProblems.
    });

    feature('search finds a message; clicking the result opens it highlighted in its room', async () => {
        await inLobby();
        const word = `zebrafish${tag}`;
        const sent = await sendViaUI(world.alice.page, `the ${word} swims upstream`);
        await openRoom(world.bob.page, await bobsOtherRoom());
        expect(await world.bob.page.getByTestId('search-room-filter').inputValue()).toBe('');
        const result = world.bob.page.locator(`[data-testid="search-result"][data-room-id="${lobby}"][data-seq="${sent.seq}"]`);
        await searchUntilShown(world.bob.page, word, result, 'the search result for the message');
        await world.bob.page.getByTestId('search-results').waitFor({ state: 'visible' });
        expect(await textOf(result)).toContain(word);
        await result.click();
        await waitForRoom(world.bob.page, lobby);
        await expect
            .poll(() => attrNow(messageBySeq(world.bob.page, sent.seq!), 'data-highlighted'), { ...POLL, message: 'the message is highlighted' })
            .toBe('true');
        expect(await messageBySeq(world.bob.page, sent.seq!).isVisible()).toBe(true);
    });

    feature('a vanishing (ephemeral) message reaches the other side and is not stored', async () => {
        await inLobby();
        await world.bob.page.getByTestId('composer-ephemeral').check();
        await world.bob.page.getByTestId('composer').fill('psst, this vanishes');
        await world.bob.page.getByTestId('composer').press('Enter');
        await expect
            .poll(async () => (await world.alice.page.getByTestId('ephemeral-message').allTextContents()).some((t) => t.includes('psst, this vanishes')), {
                ...POLL,
                message: 'alice sees the ephemeral message',
            })
            .toBe(true);
        await world.bob.page.getByTestId('composer-ephemeral').uncheck();
        expect(await count(message(world.alice.page, 'psst, this vanishes'))).toBe(0);
        const stored = await world.api.messages(A.token, lobby, { limit: 20 });
        expect(stored.messages.map((m: any) => m.body)).not.toContain('psst, this vanishes');
    });

    feature('bob opens a direct conversation with alice, who shows as online', async () => {
        await inLobby();
        await world.bob.page.getByTestId('new-dm-button').click();
        await world.bob.page.getByTestId('dm-username').fill(A.username);
        await world.bob.page.getByTestId('dm-submit').click();
        const dm = world.bob.page.locator(`[data-testid="room-item"][data-room-name="${A.username}"]`);
        await dm.waitFor({ state: 'visible' });
        await expect.poll(() => attrNow(dm.getByTestId('presence-dot'), 'data-status'), { ...POLL, message: "alice's presence dot" }).toBe('online');
        const dmId = (await dm.getAttribute('data-room-id'))!;
        await openRoom(world.bob.page, dmId);
        await sendViaUI(world.bob.page, 'just between us');
        await expect.poll(() => count(roomItem(world.alice.page, dmId)), { ...POLL, timeout: 25_000, message: 'the direct room appears in alice\'s list' }).toBe(1);
        await openRoom(world.alice.page, dmId);
        await waitForMessage(world.alice.page, 'just between us', 'alice');
    });

    feature('alice stays logged in across a reload, in the same room', async () => {
        await inLobby();
        await world.alice.page.reload();
        await expect.poll(() => textOf(world.alice.page.getByTestId('me')), POLL).toContain(A.username);
        await waitForRoom(world.alice.page, lobby);
        await waitForMessage(world.alice.page, 'read them all', 'alice after the reload');
        expect(await count(world.alice.page.getByTestId('auth-username'))).toBe(0);
    });

    feature('alice logs out, and stays logged out after a reload', async () => {
        await inLobby();
        await world.alice.page.getByTestId('logout').click();
        await world.alice.page.getByTestId('auth-username').waitFor({ state: 'visible' });
        expect(await count(world.alice.page.getByTestId('me'))).toBe(0);
        await world.alice.page.reload();
        await world.alice.page.getByTestId('auth-username').waitFor({ state: 'visible' });
        expect(await count(world.alice.page.getByTestId('room-list'))).toBe(0);
        // And can log in again.
        await loginViaUI(world.alice.page, A.username);
        await expect.poll(() => count(roomItem(world.alice.page, lobby)), POLL).toBe(1);
    });

    feature('a wrong password shows an error, not a session', async () => {
        await inLobby();
        world.bob.tolerate(/status of 401/);
        await world.bob.page.getByTestId('logout').click();
        await world.bob.page.getByTestId('auth-username').fill(B.username);
        await world.bob.page.getByTestId('auth-password').fill('not the password at all');
        await world.bob.page.getByTestId('auth-submit').click();
        await world.bob.page.getByTestId('auth-error').waitFor({ state: 'visible' });
        expect(await count(world.bob.page.getByTestId('me'))).toBe(0);
        world.bob.strict();
    });

    // Last: the password it sets is not the one the features above log in with.
    feature('alice changes her display name and her password in Settings; bob sees the new name live; her other sessions are signed out', async () => {
        const page = world.alice.page;
        const bob = world.bob.page;
        await page.keyboard.press('Escape');
        // bob (signed out by a feature above) is back in the lobby, his feed live there: he
        // sees alice type, then her message, by the name she has now.
        if ((await count(bob.getByTestId('me'))) === 0) await loginViaUI(bob, B.username);
        await bob.keyboard.press('Escape');
        for (const p of [page, bob]) if ((await attrNow(roomItem(p, lobby), 'aria-current')) !== 'page') await openRoom(p, lobby);
        await page.getByTestId('composer').pressSequentially('about to', { delay: 30 });
        await expect.poll(() => textOf(bob.getByTestId('typing-indicator')), { ...POLL, message: "bob sees alice typing" }).toContain(A.displayName);
        const before = `my name is about to change ${tag}`;
        await sendViaUI(page, before);
        await waitForMessage(bob, before, 'bob');
        await expect.poll(async () => (await messageState(bob, before))?.author ?? 'not shown', { ...POLL, message: "alice's name on bob's page" }).toContain(A.displayName);
        // Gone after a reload: the checks of the new name below are made on this very page.
        await bob.evaluate(() => {
            (window as unknown as { notReloaded?: boolean }).notReloaded = true;
        });

        const elsewhere = await world.api.login(A.username); // another device of hers
        await page.getByTestId('settings-button').click();
        const sessions = page.getByTestId('session-item');
        await expect.poll(() => count(sessions), { ...POLL, message: 'her sessions in Settings' }).toBeGreaterThanOrEqual(2);
        expect(await count(page.locator('[data-testid="session-item"][data-current="true"]'))).toBe(1);
        expect(await textOf(page.getByTestId('session-this-device'))).toBe('This device');

        const renamed = `Alice the Great ${tag}`;
        await page.getByTestId('settings-display-name').fill(renamed);
        await page.getByTestId('settings-display-name-save').click();
        await expect.poll(() => textOf(page.getByTestId('me')), { ...POLL, message: 'the header shows the new name' }).toContain(renamed);
        await expect.poll(async () => (await world.api.me(elsewhere.access_token)).display_name, { ...POLL, message: 'display_name in GET /v1/me' }).toBe(renamed);

        // bob's open page shows the new name at once (the `member_updated` frame), no reload:
        // her message's author, the lobby's last message in his list, their direct room.
        await expect.poll(async () => (await messageState(bob, before))?.author ?? 'not shown', { ...POLL, message: "alice's new name on bob's open page" }).toContain(renamed);
        await expect
            .poll(() => textOf(roomItem(bob, lobby).getByTestId('room-last-message')), { ...POLL, message: "the lobby's last message in bob's list" })
            .toBe(`${renamed}: ${before}`);
        const dm = bob.locator(`[data-testid="room-item"][data-room-name="${A.username}"]`);
        if ((await count(dm)) > 0) await expect.poll(() => textOf(dm), { ...POLL, message: "their direct room in bob's list" }).toContain(renamed);
        expect(await bob.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);

        const newPassword = `a new password ${tag}`;
        world.alice.tolerate(/status of 403/);
        await page.getByTestId('settings-current-password').fill('not her password at all');
        await page.getByTestId('settings-new-password').fill(newPassword);
        await page.getByTestId('settings-password-submit').click();
        await expect.poll(() => textOf(page.getByTestId('password-error')), POLL).toBe('The current password is wrong.');
        world.alice.strict();
        await page.getByTestId('settings-current-password').fill(PASSWORD);
        await page.getByTestId('settings-new-password').fill(newPassword);
        await page.getByTestId('settings-password-submit').click();
        await expect.poll(() => textOf(page.getByTestId('password-result')), POLL).toMatch(/^Password changed; [1-9]\d* other sessions? signed out\.$/);
        await expect.poll(() => count(sessions), { ...POLL, message: 'only this device is left' }).toBe(1);
        expect((await world.api.request('POST', '/v1/auth/refresh', { body: { refresh_token: elsewhere.refresh_token } })).status).toBe(401);
        expect((await world.api.request('POST', '/v1/auth/login', { body: { username: A.username, password: PASSWORD } })).status).toBe(401);
        await page.getByTestId('settings-close').click();

        // Still signed in here; then out, and in again with the new password, as the new name.
        await page.reload();
        await expect.poll(() => textOf(page.getByTestId('me')), POLL).toContain(renamed);
        await page.getByTestId('logout').click();
        await loginViaUI(page, A.username, newPassword);
        await expect.poll(() => textOf(page.getByTestId('me')), POLL).toContain(renamed);
    });
});
