// What a node should end up with: its rendered files, the CNI plugin where pods run, and,
// for an air-gapped install, the release archives it may lack. Hashes are computed once
// here; the node reports its own, and only what differs travels.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PATHS } from '../plan/paths.ts';
import type { Plan } from '../plan/plan.ts';
import { archiveCachePath, artifactMembers, imageArchives } from '../render/artifacts.ts';
import type { RenderedCluster } from '../render/index.ts';
import { restartRules, type RestartRule } from '../render/restarts.ts';
import { EXECUTABLE } from '../render/files.ts';
import { ShipError } from './transport.ts';

export interface ShipFile {
  /** Absolute path on the node. */
  path: string;
  mode: number;
  size: number;
  sha256: string;
  /** Rendered content, or a file on this machine (the plugin, streamed when sent). */
  source: { content: string } | { file: string };
}

interface ShipArchive {
  name: string;
  url: string;
  checksum: string;
  /** Where binaries.dir holds it on this machine. */
  file: string;
  /** Where a verified copy lives on the node (provision/install-binaries' cache). */
  cachePath: string;
  /** Checks the local file against the pinned checksum; resolves with its size. */
  verify(): Promise<number>;
}

export interface NodeBundle {
  node: string;
  files: ShipFile[];
  archives: ShipArchive[];
  /**
   * binaries.allowAbsent: archives not in binaries.dir (file names) are left out; the node
   * installs what it has and leaves the units that need the rest idle.
   */
  allowAbsent?: { missing: string[] };
  /** The node's restart map, for a dry run to say what would restart. */
  rules: RestartRule[];
}

export interface LocalFile {
  file: string;
  size: number;
  /** Hex digest (sha256 unless asked otherwise). */
  digest: string;
}

async function hashFile(file: string, algorithm = 'sha256'): Promise<LocalFile> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return { file, size: statSync(file).size, digest: hash.digest('hex') };
}

/**
 * sha256 of `file`, remembered in `cache` with the file's stamp (inode, size, mtime, ctime
 * in ns; a rebuild changes them): the 100 MB plugin is hashed once per build, not per run.
 */
export async function hashFileCached(file: string, cache: string | undefined): Promise<LocalFile> {
  const st = statSync(file, { bigint: true });
  const stamp = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${file}`;
  const remembered = cache === undefined ? undefined : readIfExists(cache)?.split('\n');
  if (remembered?.[0] === stamp && /^[0-9a-f]{64}$/.test(remembered[1] ?? '')) return { file, size: Number(st.size), digest: remembered[1]! };
  const hashed = await hashFile(file);
  if (cache !== undefined) {
    mkdirSync(dirname(cache), { recursive: true });
    writeFileSync(cache, `${stamp}\n${hashed.digest}\n`);
  }
  return hashed;
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Bundles of the named nodes. `plugin` is dist/ipsec-cni (required when one of them runs
 * pods); `binariesDir` the absolute binaries.dir, if the install is air-gapped.
 */
export function nodeBundles(
  plan: Plan,
  cluster: RenderedCluster,
  names: readonly string[],
  plugin: LocalFile | undefined,
  binariesDir: string | undefined,
): NodeBundle[] {
  const verified = new Map<string, Promise<number>>();
  const caKey = cluster.nodes.get(plan.master.name)?.find((f) => f.path === PATHS.caKey)?.content;
  return names.map((name) => {
    const node = plan.nodes.find((n) => n.name === name)!;
    const rendered = cluster.nodes.get(name)!;
    // The CA key leaves this machine only for the master (DESIGN decision 3); render never
    // puts it elsewhere, and this makes sure no change to render ever ships it.
    if (name !== plan.master.name && caKey && rendered.some((f) => f.content.includes(caKey.trim()))) {
      throw new Error(`internal: ${name}'s tree contains the CA private key; refusing to ship it`);
    }
    const files: ShipFile[] = rendered.map((f) => ({
      path: f.path,
      mode: f.mode,
      size: Buffer.byteLength(f.content),
      sha256: createHash('sha256').update(f.content).digest('hex'),
      source: { content: f.content },
    }));
    if (node.runsPods) {
      if (!plugin) throw new ShipError(`${name} runs pods and needs the CNI plugin: run \`npm run build\` (dist/ipsec-cni) or pass --plugin FILE`);
      files.push({ path: PATHS.cniPlugin, mode: EXECUTABLE, size: plugin.size, sha256: plugin.digest, source: { file: plugin.file } });
    }
    const archives = new Map<string, ShipArchive>();
    const missing = new Set<string>();
    if (binariesDir !== undefined) {
      for (const { artifact } of artifactMembers(plan, node)) {
        const archiveName = basename(artifact.url);
        const [algo, hex] = artifact.checksum.split(':') as [string, string];
        const file = join(binariesDir, archiveName);
        if (plan.binariesAllowAbsent && !existsSync(file)) {
          missing.add(archiveName);
          continue;
        }
        archives.set(artifact.url, {
          name: archiveName,
          url: artifact.url,
          checksum: artifact.checksum,
          file,
          cachePath: archiveCachePath(artifact),
          verify: () => {
            if (!verified.has(file)) verified.set(file, verifyArchive(file, algo, hex, artifact.url));
            return verified.get(file)!;
          },
        });
      }
      // Image archives: the node verifies them (image ID, layers, tag) before it installs
      // anything; here they only need to exist. Their installed copy is what the node keeps, so
      // an archive the node already holds is not sent again.
      for (const a of imageArchives(plan, node)) {
        const file = join(binariesDir, a.image.archive);
        if (plan.binariesAllowAbsent && !existsSync(file)) {
          missing.add(a.image.archive);
          continue;
        }
        archives.set(`image:${a.image.ref}`, {
          name: a.image.archive,
          url: `image:${a.image.ref}`,
          checksum: a.image.id ?? '-',
          file,
          cachePath: a.dest,
          verify: async () => {
            try {
              return statSync(file).size;
            } catch {
              throw new ShipError(
                `air-gapped install: ${file} is missing (binaries.dir in cluster.yaml): put the image ${a.image.image} there (docker save -o ${a.image.archive} ${a.image.image})`,
              );
            }
          },
        });
      }
    }
    return {
      node: name,
      files,
      archives: [...archives.values()],
      ...(plan.binariesAllowAbsent && { allowAbsent: { missing: [...missing] } }),
      rules: restartRules(plan, node, rendered),
    };
  });
}

async function verifyArchive(file: string, algo: string, hex: string, url: string): Promise<number> {
  let local: LocalFile;
  try {
    local = await hashFile(file, algo);
  } catch {
    throw new ShipError(
      `air-gapped install: ${file} is missing (binaries.dir in cluster.yaml); expected ${algo}:${hex}; download it from ${url} and check it with ${algo}sum`,
    );
  }
  if (local.digest !== hex) {
    throw new ShipError(
      `${file}: checksum mismatch: expected ${algo}:${hex}, got ${algo}:${local.digest}; it is corrupt or not the pinned release; nothing was sent`,
    );
  }
  return local.size;
}
