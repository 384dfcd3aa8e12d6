// Runs once before the browser tests: checks what they need and removes what killed
// earlier runs left behind (databases, streams, data directories of dead processes).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM_PATH } from './browser';
import { DIST_DIR, RESULTS_DIR, chatBin, cleanStale } from './platform';

export default async function setup(): Promise<void> {
    chatBin();
    if (!existsSync(CHROMIUM_PATH)) {
        throw new Error(`Chromium is not at ${CHROMIUM_PATH}: install it (bash scripts/chromium.sh, or apt-get install -y chromium) or set CHROMIUM_PATH`);
    }
    if (!existsSync(`${DIST_DIR}/index.html`)) {
        throw new Error(`${DIST_DIR}/index.html is missing: build the client first (bash scripts/web.sh build)`);
    }
    // This run's logs and failure pictures only (screenshots are overwritten by name).
    for (const dir of ['logs', 'failures']) rmSync(join(RESULTS_DIR, dir), { recursive: true, force: true });
    mkdirSync(RESULTS_DIR, { recursive: true });
    const removed = await cleanStale();
    if (removed.length) console.log(`e2e: removed leftovers of earlier runs: ${removed.join(', ')}`);
}
