// The VM lab's air-gapped binaries directory. Kubernetes releases cannot be fetched here, so
// it holds what Debian has: etcd-server's .deb, downloaded by apt (whose signed Release and
// Packages files vouch for its sha256) and pinned in the lab's cluster.yaml by that sha256
// and its pool URL. Every other archive is absent, and provisioning leaves the units that
// need it installed, verified and idle (binaries.allowAbsent).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Runner } from '../../run.ts';

export const DEFAULT_BINARIES_DIR = '/var/cache/kube-ipsec/binaries';
const DEBIAN_POOL = 'https://deb.debian.org/debian';

export interface DebianPackage {
  name: string;
  /** Debian version (3.4.23-4+b4). */
  version: string;
  /** Upstream version with a v (v3.4.23), as versions.etcd.version wants it. */
  upstream: string;
  url: string;
  sha256: string;
  file: string;
}

/** The fields of the candidate's record in `apt-cache show --no-all-versions`. */
export function parseAptRecord(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9-]+): (.*)$/.exec(line);
    if (m && !(m[1]! in out)) out[m[1]!] = m[2]!;
  }
  return out;
}

/** `1:3.4.23-4+b4` → `v3.4.23`. */
export function upstreamVersion(debianVersion: string): string {
  return `v${debianVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '')}`;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The candidate .deb of `name` in `dir` (downloaded by apt-get when missing), checked against apt's index. */
export async function debianPackage(runner: Runner, name: string, dir = DEFAULT_BINARIES_DIR): Promise<DebianPackage> {
  const show = await runner.run(['apt-cache', 'show', '--no-all-versions', name], { allowFail: true, timeoutMs: 60_000 });
  const rec = parseAptRecord(show.stdout);
  if (show.code !== 0 || !rec.Filename || !rec.SHA256 || !rec.Version) {
    throw new Error(`apt knows no ${name} (apt-cache show ${name}: ${show.stderr.trim() || 'no Filename/SHA256'}); run apt-get update`);
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, basename(rec.Filename));
  if (!existsSync(file) || (await sha256(file)) !== rec.SHA256) {
    await runner.run(['bash', '-c', 'cd "$1" && apt-get download -q "$2=$3"', 'download', dir, name, rec.Version], { timeoutMs: 600_000 });
    const got = await sha256(file);
    if (got !== rec.SHA256) throw new Error(`${file}: sha256 ${got}, but apt's index says ${rec.SHA256}`);
  }
  return { name, version: rec.Version, upstream: upstreamVersion(rec.Version), url: `${DEBIAN_POOL}/${rec.Filename}`, sha256: rec.SHA256, file };
}
