// The browser tests (`npm run e2e`): real platform (CHAT_BIN) + real Chromium, one test
// file at a time (each file starts its own platform and browser; 2-core machines).
// The client's unit tests have their own config (vitest.config.ts).
import { defineConfig } from 'vitest/config';

export default defineConfig({
    test: {
        include: ['e2e/**/*.e2e.ts'],
        environment: 'node',
        globalSetup: ['e2e/global-setup.ts'],
        pool: 'forks',
        fileParallelism: false,
        maxWorkers: 1,
        // Generous for a loaded 2-core machine, but bounded: a hung step fails, never hangs.
        testTimeout: 180_000,
        hookTimeout: 120_000,
        teardownTimeout: 60_000,
        retry: 0,
        reporters: process.env.CI ? ['default', ['junit', { outputFile: 'test-results/e2e-junit.xml' }]] : ['default'],
    },
});
