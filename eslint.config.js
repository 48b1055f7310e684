import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'db/migrations/**', '.build-test-*/**', '.etc-test-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { files: ['**/*.mjs'], languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/http/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/store/**', '**/signer/**', 'drizzle-orm*', 'pg', '@electric-sql/pglite', 'jose'] }],
    },
  },
  {
    files: ['src/signer/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/store/**', '**/policy/**', '**/http/**', '**/auth/**'] }] },
  },
  {
    files: ['src/store/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/policy/**', '**/signer/**', '**/http/**', '**/auth/**'] }] },
  },
  {
    files: ['src/auth/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/store/**', '**/signer/**', '**/http/**'] }] },
  },
  {
    files: ['src/policy/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/http/**', 'drizzle-orm*', 'pg', '@electric-sql/pglite'] },
          {
            // The signer's interface (signer.ts) and the authority's published certificates
            // (authority.ts) only; DER, PEM and CSR parsing live in src/x509/.
            group: ['**/signer/**', '!**/signer/signer.js', '!**/signer/authority.js'],
            message: 'policy/ may import only signer/signer.js and signer/authority.js; shared DER/PEM/CSR code is in x509/.',
          },
        ],
      }],
    },
  },
  // Each folder of the console, with how many levels up lead out of src/ui/.
  ...[['src/ui/*.ts', 1], ['src/ui/components/**/*.ts', 2]].map(([files, depth]) => ({
    // The admin console: browser code bundled by Vite (src/ui/vite.config.mjs). It speaks to the CA
    // only through the HTTP API (src/ui/api.ts), never through server modules or node built-ins,
    // and keeps the admin token in memory only (src/ui/session.ts).
    files: [files],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['node:*', ...['*', '**'].map((tail) => [...Array(depth).fill('..'), tail].join('/'))], message: 'The console runs in the browser: it reaches the CA through src/ui/api.ts only.' }],
      }],
      'no-restricted-globals': ['error', ...['localStorage', 'sessionStorage', 'indexedDB'].map((name) => ({ name, message: 'The admin token stays in memory (src/ui/session.ts).' }))],
      'no-restricted-properties': ['error', ...[['document', 'cookie'], ['window', 'localStorage'], ['window', 'sessionStorage']].map(([object, property]) => ({ object, property, message: 'The admin token stays in memory (src/ui/session.ts).' }))],
    },
  })),
  {
    // Neutral PKI primitives that policy/ and signer/ both import: node:crypto, errors, ip, model types.
    files: ['src/x509/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: ['**/policy/**', '**/signer/**', '**/store/**', '**/http/**', '**/auth/**', '**/crl/**', '**/cli/**', '**/client/**', '**/audit/**'],
      }],
    },
  },
);
