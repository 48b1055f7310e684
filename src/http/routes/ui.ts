/**
 * /ui: the admin console (docs/api.md "Admin console"), a single-page application that the CA
 * serves itself from the Vite build of src/ui/ (dist/ui/ beside the compiled code). Registered on
 * the API listener only: the console signs in with an admin token, and the public listener
 * answers 404 for it like for every authenticated endpoint.
 *
 * - /ui, /ui/ and every other path under /ui/ except /ui/assets/… answer index.html (the
 *   console's client-side routes: a reload or a shared link lands on the same page), with
 *   `Cache-Control: no-cache`, so a new build is picked up at once.
 * - /ui/assets/<name> answers a built asset: its name carries a hash of its content, so it is
 *   cached for a year as immutable. A name that the build did not make is a 404 problem.
 * - Every answer under /ui carries a strict Content-Security-Policy (no inline script or style,
 *   nothing from another origin, no framing, no form submission), `X-Content-Type-Options:
 *   nosniff` and `Referrer-Policy: no-referrer`. Not part of the OpenAPI document: pages, not API.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, Next } from 'hono';
import { CaError } from '../../errors.js';
import { bytesOf } from '../bytes.js';
import type { AppEnv } from '../context.js';
import { problem } from '../problem.js';

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': UI_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** The media types of what the build makes; any other extension is not served. */
const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** A built asset's name: letters, digits, `-`, `_` and dots, never a path. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;

/**
 * dist/ui under the package root: the nearest folder above this file whose package.json is
 * service-ca's, so the same answer comes from src/http/routes (tsx) and dist/src/http/routes
 * (compiled).
 */
export function builtConsoleDir(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'service-ca') return join(dir, 'dist', 'ui');
    } catch {
      // No package.json here; look one folder up.
    }
  }
  return undefined;
}

interface Built {
  index: string;
  indexMtime: number;
  assets: Map<string, Buffer>;
}

/**
 * The build, read into memory: index.html once per change of its modification time (a rebuild
 * while the CA runs is served at once), each asset once (its name changes with its content).
 * When a rebuild swaps the folder, the copy already read keeps being served.
 */
function createBuiltReader(dir: string | undefined) {
  let built: Built | undefined;
  return {
    index(): string | undefined {
      if (!dir) return undefined;
      try {
        const mtime = statSync(join(dir, 'index.html')).mtimeMs;
        if (!built || built.indexMtime !== mtime) {
          built = { index: readFileSync(join(dir, 'index.html'), 'utf8'), indexMtime: mtime, assets: new Map() };
        }
      } catch {
        // Not built, or a rebuild is swapping the folder: keep what was read, if anything.
      }
      return built?.index;
    },
    asset(name: string): Buffer | undefined {
      if (!dir || !ASSET_NAME.test(name) || !TYPES[extname(name)]) return undefined;
      const kept = built?.assets.get(name);
      if (kept) return kept;
      try {
        if (!readdirSync(join(dir, 'assets')).includes(name)) return undefined;
        const body = readFileSync(join(dir, 'assets', name));
        built?.assets.set(name, body);
        return body;
      } catch {
        return undefined;
      }
    },
  };
}

async function secure(c: Context<AppEnv>, next: Next): Promise<void> {
  await next();
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
}

export function uiRoutes(app: OpenAPIHono<AppEnv>, dir = builtConsoleDir()): void {
  const built = createBuiltReader(dir);
  const page = (c: Context<AppEnv>) => {
    const index = built.index();
    if (index === undefined) return problem(c, new CaError('notFound', 'the admin console is not built: run `npm run build:ui`'));
    return c.html(index, 200, { 'Cache-Control': 'no-cache' });
  };
  app.use('/ui', secure);
  app.use('/ui/*', secure);
  app.get('/ui/assets/:name', (c) => {
    // index.html is read first, so that the assets it names are kept with it.
    built.index();
    const name = c.req.param('name');
    const body = built.asset(name);
    if (!body) return problem(c, new CaError('notFound', `no asset ${name} in the admin console`));
    return c.body(bytesOf(body), 200, { 'Content-Type': TYPES[extname(name)]!, 'Cache-Control': 'public, max-age=31536000, immutable' });
  });
  app.get('/ui/assets/*', (c) => problem(c, new CaError('notFound', `no asset ${new URL(c.req.url).pathname} in the admin console`)));
  app.get('/ui', page);
  app.get('/ui/*', page);
}
