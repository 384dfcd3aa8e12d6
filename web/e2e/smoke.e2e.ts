// The harness itself and the first page: a platform starts, serves the client at `/`, a
// stop and restart keep its data, and Chromium loads the login screen without a problem.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { Api, uniqueName } from './api';
import { type Person, launchBrowser, newPerson, watchProblems } from './browser';
import { Platform } from './platform';

describe('smoke', () => {
    let platform: Platform;
    let browser: Browser;
    const persons: Person[] = [];

    beforeAll(async () => {
        platform = await Platform.start('smoke');
        browser = await launchBrowser();
    });
    afterAll(async () => {
        for (const p of persons) await p.close();
        await browser?.close();
        await platform?.teardown();
    });
    watchProblems(() => persons, () => platform);

    test('the platform is ready and serves the client at /', async () => {
        const api = new Api(platform.baseURL);
        expect((await api.request('GET', '/readyz')).status).toBe(200);
        const index = await fetch(`${platform.baseURL}/`);
        expect(index.status, 'GET / serves web/dist/index.html (APP_WEB_DIR)').toBe(200);
        expect(index.headers.get('content-type') ?? '').toMatch(/text\/html/);
        const html = await index.text();
        expect(html).toMatch(/<script[^>]+type="module"/);
        console.log(`GET /: content-security-policy: ${index.headers.get('content-security-policy') ?? '(none)'}`);
    });

    test('the platform keeps its data across stop and restart', async () => {
        const api = new Api(platform.baseURL);
        const name = uniqueName('smoke');
        await api.register(name);
        await platform.stop();
        expect(platform.running).toBe(false);
        await expect(fetch(`${platform.baseURL}/readyz`)).rejects.toThrow();
        await platform.restart();
        const session = await api.login(name);
        expect(session.access_token).toBeTruthy();
    });

    test('Chromium loads the login screen with no console error and no foreign request', async () => {
        const person = await newPerson(browser, platform, 'visitor');
        persons.push(person);
        const { page } = person;
        const response = await page.goto('/');
        expect(response?.status()).toBe(200);
        await page.getByTestId('auth-username').waitFor({ state: 'visible' });
        await page.getByTestId('auth-password').waitFor({ state: 'visible' });
        await page.getByTestId('auth-submit').waitFor({ state: 'visible' });
        await page.getByTestId('auth-mode-toggle').waitFor({ state: 'visible' });
        // The screen starts in login mode: no display-name field until switching to register.
        expect(await page.getByTestId('auth-display-name').count()).toBe(0);
        await page.getByTestId('auth-mode-toggle').click();
        await page.getByTestId('auth-display-name').waitFor({ state: 'visible' });
    });
});
