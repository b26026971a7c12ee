// Writes schema/cluster.schema.json (for editors: `# yaml-language-server: $schema=…`)
// from the schema the loader validates with. A unit test fails when it is out of date.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterSchema } from '../src/config/schema.ts';

export const SCHEMA_FILE = join(fileURLToPath(new URL('..', import.meta.url)), 'schema', 'cluster.schema.json');
export const schemaText = () => JSON.stringify(clusterSchema, null, 2) + '\n';

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(SCHEMA_FILE, schemaText());
  console.log(`wrote ${SCHEMA_FILE}`);
}
