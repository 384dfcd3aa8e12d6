// Chromium for the browser tests (playwright-core driving Debian's /usr/bin/chromium), one
// browser context per person, and the checks every test gets for free: no request to a
// host other than the platform, no console error (CSP violations are console errors), no
// uncaught page error, no dialog.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { RESULTS_DIR, type Platform } from './platform';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(RESULTS_DIR, 'screenshots');
export const FAILURE_DIR = join(RESULTS_DIR, 'failures');

/** How long a locator waits for its element, and expect.poll for its condition. */
export const UI_TIMEOUT = Number(process.env.E2E_UI_TIMEOUT_MS ?? 15_000);

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function launchBrowser(): Promise<Browser> {
    try {
        return await chromium.launch({
            executablePath: CHROMIUM_PATH,
            args: [
                '--headless',
                '--no-sandbox',
                '--disable-gpu',
                '--disable-background-networking',
                '--disable-quic',
                '--no-first-run',
                '--disable-component-update',
                '--disable-sync',
                '--disable-dev-shm-usage',
            ],
            timeout: 60_000,
        });
    } catch (e) {
        throw new Error(
            `could not launch Chromium at ${CHROMIUM_PATH} (install it with 'apt-get install -y chromium' or bash scripts/chromium.sh, or set CHROMIUM_PATH): ${(e as Error).message}`,
        );
    }
}

export interface PersonOptions {
    colorScheme?: 'light' | 'dark';
    viewport?: { width: number; height: number };
    storageState?: Awaited<ReturnType<BrowserContext['storageState']>>;
}

/** One person: a browser context of their own with one page, and what went wrong in it. */
export class Person {
    readonly problems: string[] = [];
    readonly consoleLog: string[] = [];
    private allowed: RegExp[] = [];

    constructor(
        readonly name: string,
        readonly context: BrowserContext,
        readonly page: Page,
    ) {}

    /** Console errors matching `patterns` are expected (until `strict()`), e.g. while the server is down. */
    tolerate(...patterns: RegExp[]): void {
        this.allowed.push(...patterns);
    }

    strict(): void {
        this.allowed = [];
    }

    problem(what: string): void {
        this.problems.push(what);
    }

    consoleError(text: string): void {
        if (this.allowed.some((re) => re.test(text))) {
            this.consoleLog.push(`(tolerated) ${text}`);
            return;
        }
        this.problem(`console error: ${text}`);
    }

    /** Takes what went wrong so far and forgets it. */
    takeProblems(): string[] {
        return this.problems.splice(0);
    }

    async close(): Promise<void> {
        await this.context.close().catch(() => {});
    }
}

function isForeign(url: string, origin: string): boolean {
    if (/^(data|blob|about):/.test(url)) return false;
    try {
        const u = new URL(url);
        const o = new URL(origin);
        return u.host !== o.host;
    } catch {
        return true;
    }
}

/** A new browser context and page on `platform.baseURL`, watched for problems. */
export async function newPerson(browser: Browser, platform: Platform, name: string, opts: PersonOptions = {}): Promise<Person> {
    const context = await browser.newContext({
        baseURL: platform.baseURL,
        colorScheme: opts.colorScheme ?? 'light',
        viewport: opts.viewport ?? DESKTOP,
        storageState: opts.storageState,
        locale: 'en-GB',
        timezoneId: 'UTC',
    });
    context.setDefaultTimeout(UI_TIMEOUT);
    context.setDefaultNavigationTimeout(30_000);
    const page = await context.newPage();
    const person = new Person(name, context, page);
    watch(person, page, platform.baseURL);
    context.on('page', (p) => {
        if (p !== page) {
            person.problem(`a second page opened: ${p.url()}`);
            watch(person, p, platform.baseURL);
        }
    });
    return person;
}

function watch(person: Person, page: Page, origin: string): void {
    page.on('request', (req) => {
        if (isForeign(req.url(), origin)) person.problem(`request to another host: ${req.method()} ${req.url()}`);
    });
    page.on('websocket', (ws) => {
        if (isForeign(ws.url(), origin.replace(/^http/, 'ws'))) person.problem(`WebSocket to another host: ${ws.url()}`);
    });
    page.on('console', (msg) => {
        const loc = msg.location();
        const where = loc?.url ? ` (${loc.url}:${loc.lineNumber})` : '';
        const line = `${msg.type()}: ${msg.text()}${where}`;
        person.consoleLog.push(line);
        if (person.consoleLog.length > 200) person.consoleLog.shift();
        if (msg.type() === 'error') person.consoleError(`${msg.text()}${where}`);
    });
    page.on('pageerror', (err) => person.problem(`uncaught page error: ${err.stack ?? err.message}`));
    page.on('dialog', (dialog) => {
        person.problem(`a ${dialog.type()} dialog opened: ${JSON.stringify(dialog.message())}`);
        dialog.dismiss().catch(() => {});
    });
    page.on('crash', () => person.problem('the page crashed'));
}

/** Writes a screenshot to test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string, fullPage = false): Promise<string> {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const path = join(SCREENSHOT_DIR, `${name}.png`);
    await page.screenshot({ path, fullPage, animations: 'disabled', caret: 'hide' });
    return path;
}

function safe(s: string): string {
    return s.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 80);
}

/**
 * For every test of the file: fails it when a person's page had a problem (foreign request,
 * console error, page error, dialog), and on failure saves each page's screenshot and
 * prints the console and the platform log's tail.
 */
export function watchProblems(persons: () => Person[], platform: () => Platform | undefined): void {
    beforeEach(() => {
        for (const p of persons()) p.takeProblems();
    });
    afterEach(async (ctx) => {
        const failed = ctx.task.result?.state === 'fail';
        const problems = persons().flatMap((p) => p.takeProblems().map((m) => `${p.name}: ${m}`));
        if (failed || problems.length) {
            mkdirSync(FAILURE_DIR, { recursive: true });
            const lines: string[] = [`--- diagnostics for "${ctx.task.name}"`];
            for (const p of persons()) {
                const path = join(FAILURE_DIR, `${safe(ctx.task.file?.name ?? 'e2e')}-${safe(ctx.task.name)}-${p.name}.png`);
                try {
                    if (!p.page.isClosed()) {
                        await p.page.screenshot({ path, timeout: 5_000 });
                        lines.push(`${p.name}: screenshot ${path} (at ${p.page.url()})`);
                    }
                } catch (e) {
                    lines.push(`${p.name}: no screenshot (${(e as Error).message.split('\n')[0]})`);
                }
                if (p.consoleLog.length) lines.push(`${p.name}: last console lines:\n  ${p.consoleLog.slice(-15).join('\n  ')}`);
            }
            const pl = platform();
            if (pl) lines.push(`platform log ${pl.logPath}, last lines:\n${pl.logTail(40)}`);
            console.error(lines.join('\n'));
        }
        if (problems.length) {
            throw new Error(`the page(s) had problems:\n  ${problems.join('\n  ')}`);
        }
    });
}
