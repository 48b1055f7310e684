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
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/http/**', 'drizzle-orm*', 'pg', '@electric-sql/pglite'] }] },
  },
);
