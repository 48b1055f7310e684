/**
 * `npm run docs:config`: rewrites docs/configuration.md and docs/config.schema.json from the
 * configuration schema (config-reference.ts). test/unit/config-reference.test.ts fails when the
 * committed files differ from what this writes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText } from './config-reference.js';
import { configReferenceMarkdown } from './config-reference-markdown.js';

export const CONFIG_DOC_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
export const CONFIG_SCHEMA_PATH = fileURLToPath(new URL('../docs/config.schema.json', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONFIG_SCHEMA_PATH, configJsonSchemaText());
  writeFileSync(CONFIG_DOC_PATH, configReferenceMarkdown());
  console.log(`wrote ${CONFIG_SCHEMA_PATH} and ${CONFIG_DOC_PATH}`);
}
