// The Go toolchain the binaries are built with: /usr/local/go (where the official archive
// installs) or go on PATH, at least the version the pinned Kubernetes needs.
import { existsSync } from 'node:fs';
import type { Runner } from '../run.ts';
import type { Toolchain } from './build.ts';

/** Go the pinned Kubernetes release needs (its go.mod: `go 1.26.0`). */
const MINIMUM = [1, 26] as const;

export async function findGo(runner: Runner): Promise<Pick<Toolchain, 'go' | 'goVersion'>> {
  const go = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
  const r = await runner.run([go, 'env', 'GOVERSION'], { allowFail: true, env: { ...process.env, GOTOOLCHAIN: 'local' } }).catch(() => undefined);
  const version = r?.code === 0 ? r.stdout.trim() : undefined;
  if (!version) throw new Error(`no Go toolchain: install Go ${MINIMUM.join('.')} or newer (https://go.dev/dl, into /usr/local/go)`);
  if (!goAtLeast(version, MINIMUM))
    throw new Error(`${go} is ${version}; building the pinned Kubernetes needs Go ${MINIMUM.join('.')} or newer (https://go.dev/dl)`);
  return { go, goVersion: version };
}

/** go1.26.8 ≥ [1, 26]; development versions (devel …) count as new enough. */
export function goAtLeast(version: string, min: readonly [number, number]): boolean {
  const m = /^go(\d+)\.(\d+)/.exec(version);
  if (!m) return version.startsWith('devel');
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > min[0] || (major === min[0] && minor >= min[1]);
}
