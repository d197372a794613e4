import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The console is built into dist/web, which `cairn server` serves at "/" (src/server/console.ts).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    // Nothing inlined as data: URLs: the server's Content-Security-Policy allows 'self' only.
    assetsInlineLimit: 0,
  },
});
