// The VM lab with Kubernetes running: the binaries `npm run binaries` built, handed to the
// lab as its binaries.dir, and the wait for the cluster the provisioning brought up (every
// minion Ready, CoreDNS available), asked of the master's kubectl over ssh.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MANIFEST_FILE, readManifest, type BinariesManifest } from '../../binaries/manifest.ts';
import { packagePath } from '../../package-root.ts';
import type { Plan } from '../../plan/plan.ts';
import { PATHS } from '../../plan/paths.ts';
import { waitFor, type Runner } from '../../run.ts';
import { LabError } from '../host.ts';
import { linkOrCopy } from '../link.ts';

/** Where `npm run binaries` puts its output by default: ./binaries of this checkout. */
export const DEFAULT_BUILT_DIR = packagePath('binaries');

export interface BuiltBinaries {
  dir: string;
  manifest: BinariesManifest;
}

/** The built binaries in `dir` (default ./binaries), or undefined when none were built there. */
export function builtBinaries(dir = DEFAULT_BUILT_DIR): BuiltBinaries | undefined {
  const abs = resolve(dir);
  const manifest = existsSync(join(abs, MANIFEST_FILE)) ? readManifest(abs) : undefined;
  return manifest && { dir: abs, manifest };
}

/** The lab's own binaries.dir: links to every built file (no copy of hundreds of MB per lab). */
export function labBinariesDir(built: BuiltBinaries, dest: string): void {
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(built.dir)) {
    if (f.endsWith('.tmp')) continue;
    const to = join(dest, f);
    if (!existsSync(to)) linkOrCopy(join(built.dir, f), to);
  }
}

export interface KubernetesReady {
  /** Seconds from the call until every minion was Ready. */
  nodesReady: number;
  /** Seconds from the call until CoreDNS had every replica available. */
  dnsReady: number;
}

interface NodeList {
  items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
}
interface Deployment {
  spec?: { replicas?: number };
  status?: { availableReplicas?: number };
}

/** `kubectl` on the master as root (its kubeconfig is the admin credential), as argv for `onMaster`. */
export function masterKubectl(args: string[]): string[] {
  return ['kubectl', '--kubeconfig', PATHS.rootKubeconfig, ...args];
}

/**
 * Waits until every minion is Ready and CoreDNS is available, asking the master's kubectl
 * (`onMaster` turns an argv into one that runs on the master). Throws naming what is not
 * ready and where to look.
 */
export async function waitForKubernetes(
  runner: Runner,
  onMaster: (argv: string[]) => readonly string[],
  plan: Plan,
  log: (line: string) => void,
  timeoutMs = 900_000,
): Promise<KubernetesReady> {
  const started = Date.now();
  const kubectl = async <T>(args: string[]): Promise<T | undefined> => {
    const r = await runner.run(onMaster(masterKubectl([...args, '-o', 'json'])), { allowFail: true, timeoutMs: 60_000 });
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  };
  const minions = plan.minions.map((m) => m.name);
  let notReady = minions;
  const nodesOk = await waitFor(
    async () => {
      const list = await kubectl<NodeList>(['get', 'nodes']);
      const ready = new Set(
        (list?.items ?? []).filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name),
      );
      notReady = minions.filter((m) => !ready.has(m));
      return notReady.length === 0;
    },
    timeoutMs,
    3000,
  );
  if (!nodesOk)
    throw new LabError(`Kubernetes: ${notReady.join(', ')} not Ready after ${timeoutMs / 1000} s (journalctl -u kubelet on them; npm run lab -- ssh NODE)`);
  const nodesReady = (Date.now() - started) / 1000;
  log(`Kubernetes: ${minions.join(', ')} Ready ${nodesReady.toFixed(0)} s after provisioning`);
  let available = '0';
  const dnsOk = await waitFor(
    async () => {
      const d = await kubectl<Deployment>(['-n', 'kube-system', 'get', 'deployment', 'coredns']);
      const want = d?.spec?.replicas ?? 1;
      available = `${d?.status?.availableReplicas ?? 0}/${want}`;
      return (d?.status?.availableReplicas ?? 0) >= want;
    },
    Math.max(0, timeoutMs - (Date.now() - started)),
    3000,
  );
  if (!dnsOk)
    throw new LabError(
      `Kubernetes: CoreDNS has ${available} replicas available after ${timeoutMs / 1000} s (kubectl -n kube-system describe pods -l k8s-app=kube-dns on the master)`,
    );
  const dnsReady = (Date.now() - started) / 1000;
  log(`Kubernetes: CoreDNS available ${dnsReady.toFixed(0)} s after provisioning`);
  return { nodesReady, dnsReady };
}
