/**
 * The admin console's build (docs/api.md "Admin console"): src/ui/ → dist/ui/, served under /ui
 * by src/http/routes/ui.ts. Offline (no plugin, nothing fetched), and shaped for the console's
 * Content-Security-Policy: no inline script or style in index.html, no asset inlined as a data:
 * URL (img-src 'self' refuses them), no module-preload polyfill (an extra script), names hashed
 * by content so that the server may cache them as immutable.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/ui/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../../dist/ui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
});
