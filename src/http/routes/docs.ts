/**
 * /docs: the OpenAPI document (/openapi.json) rendered by Swagger UI, served from the
 * swagger-ui-dist package itself, so the page works on a network with no route to the internet
 * and loads nothing from elsewhere (its Content-Security-Policy says so). Not part of the
 * OpenAPI document: these are pages, not API.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { bytesOf } from '../bytes.js';
import type { AppEnv } from '../context.js';

const DIST = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>service-ca API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

/** Swagger UI started on our document; a file, not inline, so the CSP needs no 'unsafe-inline' script. */
const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null });
`;

const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSETS: Record<string, { file: string; type: string }> = {
  'swagger-ui.css': { file: 'swagger-ui.css', type: 'text/css; charset=utf-8' },
  'swagger-ui-bundle.js': { file: 'swagger-ui-bundle.js', type: 'text/javascript; charset=utf-8' },
  'favicon-32x32.png': { file: 'favicon-32x32.png', type: 'image/png' },
};

/** Each asset is read once, on first request, and kept (about 1.5 MB in all). */
const loaded = new Map<string, Buffer>();
function asset(name: string): Buffer {
  let body = loaded.get(name);
  if (!body) {
    body = readFileSync(join(DIST, ASSETS[name]!.file));
    loaded.set(name, body);
  }
  return body;
}

const CACHE = 'public, max-age=86400';

export function docsRoutes(app: OpenAPIHono<AppEnv>): void {
  app.get('/docs', (c) => c.html(PAGE, 200, { 'Content-Security-Policy': CSP, 'Cache-Control': 'no-cache' }));
  app.get('/docs/init.js', (c) => c.body(INIT, 200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': CACHE }));
  for (const name of Object.keys(ASSETS)) {
    app.get(`/docs/${name}`, (c) => {
      return c.body(bytesOf(asset(name)), 200, { 'Content-Type': ASSETS[name]!.type, 'Cache-Control': CACHE });
    });
  }
}
