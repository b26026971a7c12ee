// Builds the CNI plugin into one self-contained executable: dist/ipsec-cni.
// `bun build --compile` embeds the Bun runtime, so the node needs nothing installed
// (see README "Why Bun for the plugin" for the startup measurements behind the choice).
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'ipsec-cni');
mkdirSync(dirname(outfile), { recursive: true });
const bun = join(root, 'node_modules', '.bin', 'bun');
const r = spawnSync(bun, ['build', '--compile', '--minify', join(root, 'src/cni/main.ts'), '--outfile', outfile], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
