import { defineConfig } from 'vite';

// The platform the dev server forwards the API and the WebSocket feed to
// (`CHAT_API=http://127.0.0.1:8080 npm run dev`).
const api = process.env.CHAT_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    // No inline polyfill: the page's CSP forbids inline scripts anyway.
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: {
    proxy: {
      '/v1': { target: api, ws: true, changeOrigin: false },
      '/openapi.json': { target: api },
    },
  },
});
