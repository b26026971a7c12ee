// test/tools/k8s-config-check (Go, the API server's own loaders at the pinned release), built
// once per source into a cache directory and run on rendered files.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './cluster.ts';

const SOURCE = `${repoRoot}test/tools/k8s-config-check`;
const CACHE = '/var/cache/kube-ipsec/tools/k8s-config-check';

function goBinary(): string {
  for (const go of ['go', '/usr/local/go/bin/go']) if (spawnSync(go, ['version']).status === 0) return go;
  throw new Error(
    'Go is not installed: test/tools/k8s-config-check is built from k8s.io/apiserver with it (Go ≥ 1.26, the toolchain the lab builds Kubernetes with; /usr/local/go)',
  );
}

/** Path of the built checker; builds it first if this source has not been built yet. */
function k8sConfigCheck(): string {
  const digest = createHash('sha256');
  for (const f of ['main.go', 'go.mod', 'go.sum']) digest.update(readFileSync(join(SOURCE, f)));
  const dir = join(CACHE, digest.digest('hex').slice(0, 16));
  const binary = join(dir, 'k8s-config-check');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const tmp = `${binary}.tmp-${process.pid}`;
  const r = spawnSync(goBinary(), ['build', '-trimpath', '-mod=readonly', '-o', tmp, '.'], {
    cwd: SOURCE,
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0' },
    timeout: 900_000,
  });
  if (r.status !== 0) throw new Error(`building ${SOURCE} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  renameSync(tmp, binary);
  return binary;
}

export function checkApiserverFiles(encryptionConfig: string, auditPolicy: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(k8sConfigCheck(), [encryptionConfig, auditPolicy], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
