// Pods, made the way the kubelet's runtime makes them: a sandbox network namespace, then
// the node's CNI plugin (/opt/cni/bin/ipsec-cni, run inside the node, so its IPAM store
// and log land in the node's own /var) with the node's rendered conflist.
import { join } from 'node:path';
import { parseStore } from '../cni/ipam/format.ts';
import { PATHS } from '../plan/paths.ts';
import { NETNS_DIR, readNodeFile, type CheckPod, type CheckTopology, type ClusterExec, type PodState } from './target.ts';

export const POD_IFNAME = 'eth0';

/**
 * The conflist's first plugin with the network's name and version, as libcni passes it. The
 * version is what libcni ≥ 1.2 (a CNI 1.1 runtime, containerd 2) picks: the highest of
 * `cniVersions` where the list has it (GC and STATUS need 1.1.0), else `cniVersion`.
 */
export function pluginConfig(conflistText: string): string {
  const list = JSON.parse(conflistText) as { cniVersion: string; cniVersions?: string[]; name: string; plugins: Record<string, unknown>[] };
  const first = list.plugins?.[0];
  if (!first) throw new Error('the conflist has no plugins');
  const newest = (list.cniVersions ?? []).reduce((a, b) => (compareVersions(b, a) > 0 ? b : a), list.cniVersion);
  return JSON.stringify({ cniVersion: newest, name: list.name, ...first });
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (x![i] !== y![i]) return (x![i] ?? 0) - (y![i] ?? 0);
  return 0;
}

/** The node's installed conflist (what its runtime would hand the plugin). */
export async function nodeConflist(lab: ClusterExec, node: string): Promise<string> {
  const text = await readNodeFile(lab, node, PATHS.cniConflist);
  if (text === undefined) throw new Error(`${node} has no ${PATHS.cniConflist}: it was not installed`);
  return text;
}

export function cniEnv(command: 'ADD' | 'DEL' | 'CHECK', pod: CheckPod): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: `${NETNS_DIR}/${pod.ns}`,
    CNI_IFNAME: POD_IFNAME,
    CNI_PATH: PATHS.cniBinDir,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`,
  };
}

/** argv of the plugin run as the runtime runs it: its environment only (env -i), config on stdin. */
function pluginArgv(env: Record<string, string>): string[] {
  return ['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), PATHS.cniPlugin];
}

async function callPlugin(lab: ClusterExec, command: 'ADD' | 'DEL' | 'CHECK', pod: CheckPod): Promise<unknown> {
  return runPlugin(lab, pod.node, cniEnv(command, pod), {}, `CNI ${command} of pod ${pod.name} on ${pod.node}`);
}

async function runPlugin(lab: ClusterExec, node: string, env: Record<string, string>, extraConfig: Record<string, unknown>, what: string): Promise<unknown> {
  const input = JSON.stringify({ ...JSON.parse(pluginConfig(await nodeConflist(lab, node))), ...extraConfig });
  const r = await lab.runner.run(lab.backend.onNode(node, pluginArgv(env)), { input, allowFail: true, timeoutMs: 30_000 });
  const out = r.stdout.trim();
  if (r.code !== 0) {
    let msg = out || r.stderr.trim();
    try {
      const e = JSON.parse(out) as { code?: number; msg?: string; details?: string };
      msg = `error ${e.code}: ${e.msg}${e.details ? ` (${e.details})` : ''}`;
    } catch {
      // not JSON: keep the raw text
    }
    throw new Error(`${what} failed: ${msg}`);
  }
  return out ? JSON.parse(out) : undefined;
}

interface CniResult {
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; interface?: number }[];
}

/** CNI ADD; returns the pod's address as the plugin reported it. */
export async function addPod(lab: ClusterExec, pod: CheckPod): Promise<PodState> {
  const result = (await callPlugin(lab, 'ADD', pod)) as CniResult;
  const ip = result.ips?.[0];
  if (!ip) throw new Error(`CNI ADD of pod ${pod.name} on ${pod.node} returned no IP: ${JSON.stringify(result)}`);
  const mac = ip.interface !== undefined ? result.interfaces?.[ip.interface]?.mac : undefined;
  return { ip: ip.address.split('/')[0]!, ...(mac && { mac }) };
}

export async function delPod(lab: ClusterExec, pod: CheckPod): Promise<void> {
  await callPlugin(lab, 'DEL', pod);
}

/** An attachment as a runtime knows it (CNI GC's `cni.dev/valid-attachments`). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

/**
 * CNI GC on a node, as a runtime runs it after a restart: every attachment not in `valid`
 * (those it still has) is released.
 */
export async function gcNode(lab: ClusterExec, node: string, valid: readonly Attachment[]): Promise<void> {
  const env = { PATH: cniEnv('ADD', { node, name: '', ns: '', containerId: '' }).PATH!, CNI_COMMAND: 'GC', CNI_PATH: PATHS.cniBinDir };
  const attachments = valid.map((a) => ({ containerID: a.containerId, ifname: a.ifname }));
  await runPlugin(lab, node, env, { 'cni.dev/valid-attachments': attachments }, `CNI GC on ${node}`);
}

/** Test pods the way a runtime makes them, on each node that runs pods: a sandbox netns (lo up), then CNI ADD. */
export async function createPods(lab: ClusterExec & { topology: CheckTopology }, only?: string[]): Promise<Record<string, PodState>> {
  const nodes = lab.topology.nodes.filter((n) => n.pods.length && (!only || only.includes(n.name)));
  await Promise.all(
    nodes.map((n) =>
      lab.runner.run(lab.backend.onNode(n.name, ['sh', '-c', n.pods.map((p) => `ip netns add ${p.ns} && ip -n ${p.ns} link set lo up`).join(' && ')]), {
        timeoutMs: 60_000,
      }),
    ),
  );
  const made = await Promise.all(nodes.flatMap((n) => n.pods.map(async (p) => [p.ns, await addPod(lab, p)] as const)));
  return Object.fromEntries(made);
}

/** The allocations of the node's IPAM store, as the node's plugin wrote it (none: no store yet). */
export async function readIpamStore(lab: ClusterExec, node: string): Promise<Record<string, Attachment>> {
  const network = (JSON.parse(await nodeConflist(lab, node)) as { name: string }).name;
  const path = join(PATHS.cniDataDir, `${network}.json`);
  const text = await readNodeFile(lab, node, path);
  return text === undefined ? {} : parseStore(text, `${node}:${path}`, network).allocations;
}
