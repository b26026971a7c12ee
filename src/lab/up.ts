// `lab up`: the rendered cluster's pod network on this host. One namespace per node on an
// underlay bridge holding the nodes' real IPs, an upstream router, each node booted from
// its own rendered tree, real strongSwan from the rendered ipsec.conf/secrets, and pods made
// by the compiled plugin with each node's rendered conflist.
import { join, resolve } from 'node:path';
import type { EspMode } from '../plan/mtu.ts';
import { bootNode, installNode } from './boot.ts';
import { stopwatch } from '../clock.ts';
import { chooseEspMode, LabError, preflight } from './host.ts';
import { labOf, viewOf, type Lab } from './lab.ts';
import { buildNetwork, prefixedNamespaces } from './network.ts';
import { netnsBackend } from './netns-backend.ts';
import { openView, type NodeView } from './node-view.ts';
import { addPod } from '../check/pods.ts';
import { processRunner, type Runner } from '../run.ts';
import { startMesh } from './start.ts';
import { readState, LabState, STATE_FILE } from './state.ts';
import { renderForLab, useRendered, type LabLifetimes } from './render.ts';
import { labNamespaces, labTopology } from './topology.ts';

export { DEFAULT_PLUGIN } from './plugin.ts';
import { DEFAULT_PLUGIN } from './plugin.ts';

export interface UpOptions {
  configFile: string;
  /** Where the lab keeps its state, node trees, render and captures. */
  stateDir: string;
  /** Begins every namespace and link name (1-8 of [a-z0-9]). */
  prefix: string;
  /** Install this rendered out/ tree instead of rendering configFile. */
  outDir?: string;
  /** auto: userspace ESP only where the kernel has none. */
  esp?: EspMode | 'auto';
  /** short (default): lifetimes of seconds, so that check sees rekeys; rendered: cluster.yaml's. */
  lifetimes?: LabLifetimes;
  podsPerMinion?: number;
  plugin?: string;
  runner?: Runner;
  log?: (line: string) => void;
  /** How long to wait for every IKE/CHILD SA pair (default 10 s; not converging is reported, not thrown). */
  convergeTimeoutMs?: number;
}

/** Refuses to start over a lab that is still recorded in stateDir, or beside namespaces another lab holds under this prefix. */
export function assertRoomForLab(stateDir: string, prefix: string): void {
  const existing = readState(stateDir);
  if (existing) {
    throw new LabError(`a lab (prefix ${existing.prefix}) is already recorded in ${join(stateDir, STATE_FILE)}: bring it down first (\`npm run lab -- down\`)`);
  }
  const squatters = prefixedNamespaces(prefix);
  if (squatters.length) {
    throw new LabError(
      `namespaces with the prefix ${prefix}- already exist (${squatters.slice(0, 3).join(', ')}${squatters.length > 3 ? ', …' : ''}): another lab uses this prefix; choose another with --prefix`,
    );
  }
}

export async function up(opts: UpOptions): Promise<Lab> {
  const runner = opts.runner ?? processRunner;
  const log = opts.log ?? (() => {});
  const plugin = resolve(opts.plugin ?? DEFAULT_PLUGIN);
  const stateDir = resolve(opts.stateDir);
  preflight(plugin);
  assertRoomForLab(stateDir, opts.prefix);
  const lap = stopwatch();
  const clock = () => `${Math.round(lap() * 1000)} ms`;

  const espMode = await chooseEspMode(runner, opts.esp ?? 'auto');
  const files = opts.outDir
    ? useRendered(resolve(opts.configFile), resolve(opts.outDir), espMode)
    : await renderForLab(resolve(opts.configFile), stateDir, espMode, opts.lifetimes ?? 'short');
  const topology = labTopology(files.plan, opts.prefix, opts.podsPerMinion);
  log(
    `${opts.outDir ? 'read' : 'rendered'} ${files.outDir} (ESP in the ${espMode === 'userspace' ? 'userspace: this kernel has none' : 'kernel'}): ${clock()}`,
  );

  const state = LabState.create(stateDir, {
    backend: 'netns',
    prefix: opts.prefix,
    configFile: resolve(opts.configFile),
    outDir: files.outDir,
    espMode,
    topology,
  });
  const parts = { stateDir, state, topology, views: new Map<string, NodeView>(), runner };
  const lab = labOf(parts, netnsBackend(parts));
  state.addNamespaces(labNamespaces(topology));
  await buildNetwork(runner, topology);
  log(`namespaces and underlay (${topology.nodes.length} nodes, upstream ${topology.upstream.ip}): ${clock()}`);

  await Promise.all(
    topology.nodes.map(async (node) => {
      const view = viewOf(stateDir, node);
      installNode(view, files.nodes.get(node.name)!, plugin);
      const holder = await openView(view);
      state.addProcess({ pid: holder, comm: 'sleep', ns: node.ns, role: 'view', node: node.name, what: `node view of ${node.name}` });
      lab.views.set(node.name, view);
      await bootNode(runner, view);
    }),
  );
  log(`nodes booted (rendered tree, sysctl.d, node-network): ${clock()}`);

  const convergedIn = (await startMesh(lab, opts.convergeTimeoutMs ?? 10_000)).converged;
  state.update(convergedIn === undefined ? {} : { convergedIn });
  log(
    convergedIn !== undefined
      ? `strongSwan on every node; every IKE/CHILD SA pair up ${convergedIn.toFixed(2)} s after launching charon`
      : `strongSwan on every node, but not every IKE/CHILD SA pair is up after ${clock()} (\`check\` says which)`,
  );
  clock();

  const pods = await Promise.all(topology.nodes.flatMap((node) => node.pods.map(async (pod) => [pod.ns, await addPod(lab, pod)] as const)));
  state.update({ pods: Object.fromEntries(pods), phase: 'up' });
  log(`${pods.length} pods through ${plugin}: ${clock()}`);
  return lab;
}
