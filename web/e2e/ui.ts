// Steps a person takes in the web client, written against the UI contract's data-testid
// attributes, and reads of what the page shows. No fixed sleeps: every wait is for a
// condition, bounded by UI_TIMEOUT.

import { expect, test } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { PASSWORD } from './api';
import { UI_TIMEOUT } from './browser';

export const POLL = { timeout: UI_TIMEOUT, interval: 100 };

export function escapeRe(s: string): string {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whole text equal to `s` (surrounding whitespace ignored). */
export function exactly(s: string): RegExp {
    return new RegExp(`^\\s*${escapeRe(s)}\\s*$`);
}

export function byTestId(page: Page, id: string): Locator {
    return page.getByTestId(id);
}

/** The message row whose body is exactly `body`. */
export function message(page: Page, body: string): Locator {
    return page.getByTestId('message').filter({ has: page.getByTestId('message-body').filter({ hasText: exactly(body) }) });
}

export function messageBySeq(page: Page, seq: number): Locator {
    return page.locator(`[data-testid="message"][data-seq="${seq}"]`);
}

export function roomItem(page: Page, roomId: string): Locator {
    return page.locator(`[data-testid="room-item"][data-room-id="${roomId}"]`);
}

/** The number of elements now (no waiting). */
export function count(locator: Locator): Promise<number> {
    return locator.count();
}

/** The text of the first match now, or null when there is none (no waiting). */
export async function textNow(locator: Locator): Promise<string | null> {
    const texts = await locator.evaluateAll((els) => els.map((e) => e.textContent ?? ''));
    return texts.length ? texts[0].trim() : null;
}

/** The text of the first match now, or "(not shown)" (for polls compared with strings). */
export async function textOf(locator: Locator): Promise<string> {
    return (await textNow(locator)) ?? '(not shown)';
}

export async function attrNow(locator: Locator, name: string): Promise<string | null> {
    const values = await locator.evaluateAll((els, n) => els.map((e) => e.getAttribute(n)), name);
    return values.length ? values[0] : null;
}

export interface MessageState {
    seq: number | null;
    id: string | null;
    clientId: string | null;
    status: string | null;
    mine: string | null;
    author: string;
    body: string | null;
    edited: boolean;
    deleted: boolean;
    quote: string | null;
    highlighted: string | null;
    reactions: { emoji: string; count: string; mine: string | null }[];
}

/** Every message row of the page, in DOM order, as plain data. */
export function messages(page: Page): Promise<MessageState[]> {
    return page.getByTestId('message').evaluateAll((rows) =>
        rows.map((row) => {
            const q = (id: string) => row.querySelector(`[data-testid="${id}"]`);
            const seq = row.getAttribute('data-seq');
            return {
                seq: seq === null || seq === '' ? null : Number(seq),
                id: row.getAttribute('data-message-id'),
                clientId: row.getAttribute('data-client-msg-id'),
                status: row.getAttribute('data-status'),
                mine: row.getAttribute('data-mine'),
                author: (q('message-author')?.textContent ?? '').trim(),
                body: q('message-body') ? (q('message-body')!.textContent ?? '') : null,
                edited: !!q('message-edited'),
                deleted: !!q('message-deleted'),
                quote: q('message-reply-quote') ? (q('message-reply-quote')!.textContent ?? '').trim() : null,
                highlighted: row.getAttribute('data-highlighted'),
                reactions: Array.from(row.querySelectorAll('[data-testid="reaction"]')).map((r) => ({
                    emoji: r.getAttribute('data-emoji') ?? '',
                    count: (r.textContent ?? '').replace(r.getAttribute('data-emoji') ?? '', '').trim(),
                    mine: r.getAttribute('data-mine'),
                })),
            };
        }),
    );
}

/** The state of the message whose body is exactly `body` (undefined when not shown). */
export async function messageState(page: Page, body: string): Promise<MessageState | undefined> {
    return (await messages(page)).find((m) => m.body?.trim() === body);
}

// ------------------------------------------------------------------ auth ----

export async function openApp(page: Page): Promise<void> {
    await page.goto('/');
}

async function waitForAuthScreen(page: Page): Promise<void> {
    await page.getByTestId('auth-username').waitFor({ state: 'visible' });
}

/** Registers through the auth screen (it starts in login mode) and waits to be logged in. */
export async function registerViaUI(page: Page, username: string, opts: { password?: string; displayName?: string } = {}): Promise<void> {
    if (!page.url().startsWith('http')) await openApp(page);
    await waitForAuthScreen(page);
    await page.getByTestId('auth-mode-toggle').click();
    await page.getByTestId('auth-display-name').waitFor({ state: 'visible' });
    await page.getByTestId('auth-username').fill(username);
    await page.getByTestId('auth-password').fill(opts.password ?? PASSWORD);
    if (opts.displayName) await page.getByTestId('auth-display-name').fill(opts.displayName);
    await page.getByTestId('auth-submit').click();
    await expectLoggedIn(page, username);
}

export async function loginViaUI(page: Page, username: string, password = PASSWORD): Promise<void> {
    if (!page.url().startsWith('http')) await openApp(page);
    await waitForAuthScreen(page);
    await page.getByTestId('auth-username').fill(username);
    await page.getByTestId('auth-password').fill(password);
    await page.getByTestId('auth-submit').click();
    await expectLoggedIn(page, username);
}

export async function expectLoggedIn(page: Page, username: string): Promise<void> {
    await expect
        .poll(async () => {
            const error = await textNow(page.getByTestId('auth-error'));
            if (error) return `auth-error: ${error}`;
            return (await textNow(page.getByTestId('me'))) ?? 'no [data-testid=me] yet';
        }, { ...POLL, message: `logged in as ${username} (header "me")` })
        .toContain(username);
    await page.getByTestId('room-list').waitFor({ state: 'attached' });
}

// ----------------------------------------------------------------- rooms ----

/** Creates a room through the new-room form; resolves to its id (from the room list). */
export async function createRoomViaUI(page: Page, name: string, visibility: 'public' | 'private', topic?: string): Promise<string> {
    await page.getByTestId('new-room-button').click();
    await page.getByTestId('new-room-name').fill(name);
    if (topic) await page.getByTestId('new-room-topic').fill(topic);
    await page.getByTestId('new-room-visibility').selectOption(visibility);
    await page.getByTestId('new-room-submit').click();
    const item = page.locator(`[data-testid="room-item"][data-room-name="${name}"]`);
    await expect
        .poll(async () => (await textNow(page.getByTestId('form-error'))) ?? (await count(item)), { ...POLL, message: `room "${name}" in the room list` })
        .toBe(1);
    const roomId = await item.getAttribute('data-room-id');
    if (!roomId) throw new Error(`room-item "${name}" has no data-room-id`);
    return roomId;
}

/** Opens a room from the room list and waits for its view. */
export async function openRoom(page: Page, roomId: string): Promise<void> {
    await roomItem(page, roomId).click();
    await waitForRoom(page, roomId);
}

export async function waitForRoom(page: Page, roomId: string): Promise<void> {
    await page.locator(`[data-testid="room-view"][data-room-id="${roomId}"]`).waitFor({ state: 'visible' });
    await expect.poll(() => attrNow(roomItem(page, roomId), 'aria-current'), { ...POLL, message: 'the open room is aria-current in the list' }).toBe('page');
    await page.getByTestId('composer').waitFor({ state: 'visible' });
}

/** Finds a public room through "browse rooms" and joins it; resolves to its id. */
export async function browseAndJoin(page: Page, name: string): Promise<string> {
    await page.getByTestId('browse-rooms-button').click();
    await page.getByTestId('public-room-search').fill(name);
    const item = page.locator(`[data-testid="public-room-item"][data-room-name="${name}"]`);
    await item.waitFor({ state: 'visible' });
    const roomId = await item.getAttribute('data-room-id');
    if (!roomId) throw new Error(`public-room-item "${name}" has no data-room-id`);
    await item.getByTestId('public-room-join').click();
    await roomItem(page, roomId).waitFor({ state: 'visible' });
    return roomId;
}

// -------------------------------------------------------------- messages ----

/** Types `text` into the composer and sends it with Enter; waits until it is sent. */
export async function sendViaUI(page: Page, text: string): Promise<MessageState> {
    const composer = page.getByTestId('composer');
    await composer.fill(text);
    await composer.press('Enter');
    await expect
        .poll(async () => {
            const m = await messageState(page, text);
            return m ? `${m.status}${m.seq === null ? ' (no seq)' : ''}` : 'not shown';
        }, { ...POLL, message: `own message "${text}" shown as sent` })
        .toBe('sent');
    await expect.poll(() => composer.inputValue(), { ...POLL, message: 'the composer is cleared after sending' }).toBe('');
    return (await messageState(page, text))!;
}

/** Waits until the message whose body is `body` is shown and sent; resolves to its state. */
export async function waitForMessage(page: Page, body: string, who = 'page'): Promise<MessageState> {
    await expect
        .poll(async () => (await messageState(page, body))?.status ?? 'not shown', { ...POLL, message: `${who} shows the message "${body}"` })
        .toBe('sent');
    return (await messageState(page, body))!;
}

/**
 * Searches messages for `q` and waits for `hit` (one search result) to show, searching
 * again until it does: the search index follows the log closely but not instantly.
 */
export async function searchUntilShown(page: Page, q: string, hit: Locator, what: string): Promise<void> {
    const input = page.getByTestId('search-input');
    await input.fill(q);
    await expect
        .poll(async () => {
            if ((await count(hit)) === 0) await input.press('Enter');
            return count(hit);
        }, { ...POLL, interval: 500, message: what })
        .toBe(1);
}

/** Reveals a message row's action buttons (hover) and clicks one. */
export async function messageAction(row: Locator, action: 'message-edit' | 'message-delete' | 'message-reply' | 'message-react'): Promise<void> {
    await row.scrollIntoViewIfNeeded();
    await row.hover();
    const button = row.getByTestId(action);
    try {
        await button.click({ timeout: 3_000 });
    } catch {
        await row.focus().catch(() => {});
        await button.click({ force: true });
    }
}

/**
 * Steps of a file that build on each other. `step`: once one fails, every later test is
 * skipped, naming it. `feature`: runs unless a step failed; its own failure skips nothing.
 */
export function chain() {
    let failed: string | undefined;
    const define = (critical: boolean) => (name: string, fn: () => Promise<void>, timeout?: number) =>
        test(name, async (ctx) => {
            if (failed) {
                console.warn(`skipped "${name}": it needs the earlier step "${failed}", which failed`);
                ctx.skip();
            }
            try {
                await fn();
            } catch (e) {
                if (critical) failed = name;
                throw e;
            }
        }, timeout);
    return { step: define(true), feature: define(false) };
}
