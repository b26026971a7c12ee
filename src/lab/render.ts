// The files the lab installs: the cluster rendered by the real pipeline (or an out/ tree
// rendered before), with the one lab override — ESP in userspace (strongSwan's
// kernel-libipsec) where the kernel has none. Everything else is byte for byte what the
// VMs get; the nodes are installed from out/<node>/… exactly as provisioning ships it.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument, type Document } from 'yaml';
import { loadClusterFile, parseCluster } from '../config/load.ts';
import type { EspMode } from '../plan/mtu.ts';
import { PATHS } from '../plan/paths.ts';
import { planCluster, type Plan } from '../plan/plan.ts';
import type { RenderedFile } from '../render/files.ts';
import { runRender } from '../render/pipeline.ts';
import { LabError } from './host.ts';

export interface LabFiles {
  plan: Plan;
  /** out/ directory the nodes are installed from. */
  outDir: string;
  nodes: Map<string, RenderedFile[]>;
}

/** What the lab does with the SA lifetimes of cluster.yaml: keep them, or shorten them so that rekeys happen while `check` watches. */
export type LabLifetimes = 'short' | 'rendered';

/**
 * The lab's lifetimes: each pair rekeys its CHILD_SA every 20-30 s and its IKE_SA every
 * 50-60 s (strongSwan rekeys between lifetime − 2×margin and lifetime − margin), so `check`'s
 * rekey sees two CHILD_SA rekeys and one IKE_SA rekey in about a minute, and every other
 * check runs across rekeys too. Hours-long production lifetimes could not be tested here.
 */
export const SHORT_LIFETIMES = { lifetime: '40s', ikeLifetime: '70s', rekeyMargin: '10s' } as const;

/** The cluster.yaml text with `ipsec.espMode` set (comments and layout kept), and more edits. */
export function withEspMode(yamlText: string, espMode: EspMode, edit?: (doc: Document) => void): string {
  const doc = parseDocument(yamlText);
  doc.setIn(['ipsec', 'espMode'], espMode);
  edit?.(doc);
  return doc.toString();
}

/** The lab's overrides of a cluster.yaml text: ESP mode, and the lifetimes when shortened. */
export function withLabOverrides(yamlText: string, espMode: EspMode, lifetimes: LabLifetimes, edit?: (doc: Document) => void): string {
  return withEspMode(yamlText, espMode, (doc) => {
    if (lifetimes === 'short') for (const [key, value] of Object.entries(SHORT_LIFETIMES)) doc.setIn(['ipsec', key], value);
    edit?.(doc);
  });
}

/**
 * Renders the cluster into <stateDir>/out with the lab's own PKI state (<stateDir>/pki); the
 * lab's cluster.yaml (the user's, with the lab's overrides) is kept as <stateDir>/cluster.yaml.
 * The plan it returns is the lab's (its lifetimes are what the nodes run).
 */
export async function renderForLab(
  configFile: string,
  stateDir: string,
  espMode: EspMode,
  lifetimes: LabLifetimes,
  edit?: (doc: Document) => void,
): Promise<LabFiles> {
  loadClusterFile(configFile); // problems are reported against the file as the user wrote it
  const text = withLabOverrides(readFileSync(configFile, 'utf8'), espMode, lifetimes, edit);
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, 'cluster.yaml'), text);
  const outDir = join(stateDir, 'out');
  const result = await runRender({ configFile, configText: text, outDir, stateDir: join(stateDir, 'pki') });
  return { plan: result.plan, outDir, nodes: readOutDir(outDir, result.plan) };
}

/** An out/ tree rendered earlier (possibly edited by hand), planned from the same cluster.yaml. */
export function useRendered(configFile: string, outDir: string, espMode: EspMode): LabFiles {
  loadClusterFile(configFile);
  const plan = planCluster(parseCluster(withEspMode(readFileSync(configFile, 'utf8'), espMode), configFile));
  const nodes = readOutDir(outDir, plan);
  for (const [node, files] of nodes) {
    const conf = files.find((f) => f.path === PATHS.strongswanConf);
    const loadsLibipsec = conf !== undefined && /kernel-libipsec\s*\{[^}]*load\s*=\s*yes/.test(conf.content);
    if (loadsLibipsec !== (espMode === 'userspace')) {
      throw new LabError(
        `${join(outDir, node, PATHS.strongswanConf)} ${loadsLibipsec ? 'loads' : 'does not load'} kernel-libipsec, but the lab runs with ESP in the ${espMode === 'userspace' ? 'userspace (this kernel has no ESP)' : 'kernel'}: ` +
          `render with \`ipsec.espMode: ${espMode}\`, or let the lab render (omit --out)`,
      );
    }
  }
  return { plan, outDir, nodes };
}

function readOutDir(outDir: string, plan: Plan): Map<string, RenderedFile[]> {
  const nodes = new Map<string, RenderedFile[]>();
  for (const n of plan.nodes) {
    const root = join(outDir, n.name);
    if (!existsSync(root)) throw new LabError(`${root} does not exist: ${outDir} was not rendered from this cluster.yaml (no node ${n.name})`);
    nodes.set(n.name, readTree(root));
  }
  return nodes;
}

/** Every file under `root` as a RenderedFile at its absolute path on the node, with its mode. */
export function readTree(root: string, rel = ''): RenderedFile[] {
  const out: RenderedFile[] = [];
  for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
    const path = `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...readTree(root, path));
    else if (e.isFile()) out.push({ path, content: readFileSync(join(root, path), 'utf8'), mode: statSync(join(root, path)).mode & 0o7777 });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
