// The harness itself and the first page: a platform starts, serves the client at `/`, a
// stop and restart keep its data, and Chromium loads the login screen without a problem.

import { describe, expect, test } from 'vitest';
import { uniqueName } from './api';
import { stage } from './people';

describe('smoke', () => {
    const world = stage('smoke');

    test('the platform is ready and serves the client at /', async () => {
        expect((await world.api.request('GET', '/readyz')).status).toBe(200);
        const index = await fetch(`${world.platform.baseURL}/`);
        expect(index.status, 'GET / serves web/dist/index.html (APP_WEB_DIR)').toBe(200);
        expect(index.headers.get('content-type') ?? '').toMatch(/text\/html/);
        const html = await index.text();
        expect(html).toMatch(/<script[^>]+type="module"/);
        console.log(`GET /: content-security-policy: ${index.headers.get('content-security-policy') ?? '(none)'}`);
    });

    test('the platform keeps its data across stop and restart', async () => {
        const name = uniqueName('smoke');
        await world.api.register(name);
        await world.platform.stop();
        expect(world.platform.running).toBe(false);
        await expect(fetch(`${world.platform.baseURL}/readyz`)).rejects.toThrow();
        await world.platform.restart();
        const session = await world.api.login(name);
        expect(session.access_token).toBeTruthy();
    });

    test('Chromium loads the login screen with no console error and no foreign request', async () => {
        const { page } = await world.person('visitor');
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
