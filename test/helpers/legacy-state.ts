// The state dir and strongSwan files of a cluster issued before trust domains were split
// (test/fixtures/legacy-one-ca, made with main at a2c1d71): one CA for everything.
import { chmodSync, cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoryStore } from '../../src/pki/store.ts';
import type { RenderedFile } from '../../src/render/files.ts';
import { readTree } from '../../src/lab/render.ts';
import { repoRoot } from './cluster.ts';

const LEGACY_DIR = `${repoRoot}test/fixtures/legacy-one-ca`;
const STATE = join(LEGACY_DIR, 'state');

/** The legacy state dir in memory (writes stay there). */
export function legacyMemoryStore(): ReturnType<typeof memoryStore> {
  return memoryStore(Object.fromEntries(readdirSync(STATE).map((f) => [f, readFileSync(join(STATE, f), 'utf8')])));
}

/** Copies the legacy state dir to `dir`, keys 0600 as render leaves them (git keeps no modes). */
export function copyLegacyState(dir: string): void {
  cpSync(STATE, dir, { recursive: true });
  chmodSync(dir, 0o700);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), f.endsWith('.key') ? 0o600 : 0o644);
}

/** The strongSwan files a node rendered from the legacy state had (ESP in userspace). */
export function legacyIpsecFiles(node: string): RenderedFile[] {
  return readTree(join(LEGACY_DIR, 'ipsec', node)).map((f) => ({ ...f, mode: /private|ipsec\.secrets/.test(f.path) ? 0o600 : 0o644 }));
}
