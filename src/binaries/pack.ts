// Built binaries into files shaped like the official downloads: gzipped tar archives with the
// members where the release has them (kubernetes/server/bin/…, etcd-v…-linux-amd64/…), or a
// bare binary. Reproducible: the same binaries give the same bytes (sorted names, mtime 0,
// root-owned, gzip without a name or time), so the recorded sha256 only moves with the code.
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Runner } from '../run.ts';
import type { ArchiveSpec } from './recipes.ts';

/** GNU tar flags that make an archive depend on its members' bytes and modes only. */
export const REPRODUCIBLE_TAR = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu'];

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes `spec` to `dest` (through dest.tmp, renamed into place); returns its sha256. */
export async function packArchive(runner: Runner, spec: ArchiveSpec, binaries: ReadonlyMap<string, string>, dest: string, workDir: string): Promise<string> {
  const from = (binary: string) => {
    const path = binaries.get(binary);
    if (!path) throw new Error(`internal: ${spec.file} needs ${binary}, which no recipe built`);
    return path;
  };
  const tmp = `${dest}.tmp`;
  rmSync(tmp, { force: true });
  if (spec.bare) {
    copyFileSync(from(spec.members[0]!.binary), tmp);
  } else {
    const stage = join(workDir, `stage-${spec.file}`);
    rmSync(stage, { recursive: true, force: true });
    try {
      for (const m of spec.members) {
        mkdirSync(join(stage, dirname(m.path)), { recursive: true });
        copyFileSync(from(m.binary), join(stage, m.path));
      }
      await runner.run(['tar', ...REPRODUCIBLE_TAR, '--mode=u=rwX,go=rX', '--use-compress-program=gzip -n', '-C', stage, '-cf', tmp, ...topLevel(spec)], {
        timeoutMs: 1800_000,
      });
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  }
  renameSync(tmp, dest);
  return sha256File(dest);
}

function topLevel(spec: ArchiveSpec): string[] {
  return [...new Set(spec.members.map((m) => m.path.split('/')[0]!))];
}
