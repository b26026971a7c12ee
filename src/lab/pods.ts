// Pods, made the way the kubelet's runtime makes them: a sandbox network namespace, then
// the node's CNI plugin (/opt/cni/bin/ipsec-cni, run inside the node, so its IPAM store
// and log land in the node's own /var) with the node's rendered conflist.
import { readFileSync } from 'node:fs';
import { PATHS } from '../plan/paths.ts';
import { PLUGIN_ON_NODE } from './boot.ts';
import { hostPath, inNode, type NodeView } from './node-view.ts';
import { NETNS_DIR } from './procs.ts';
import type { Runner } from './run.ts';
import type { LabPodState } from './state.ts';
import type { LabPod } from './topology.ts';

export const POD_IFNAME = 'eth0';

/** The conflist's first plugin with the network's name and version, as libcni passes it. */
export function pluginConfig(conflistText: string): string {
  const list = JSON.parse(conflistText) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  const first = list.plugins?.[0];
  if (!first) throw new Error('the conflist has no plugins');
  return JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...first });
}

export function nodeConflist(view: NodeView): string {
  return readFileSync(hostPath(view, PATHS.cniConflist), 'utf8');
}

export function cniEnv(command: 'ADD' | 'DEL' | 'CHECK', pod: LabPod): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: `${NETNS_DIR}/${pod.ns}`,
    CNI_IFNAME: POD_IFNAME,
    CNI_PATH: PATHS.cniBinDir,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`,
  };
}

async function callPlugin(runner: Runner, view: NodeView, command: 'ADD' | 'DEL' | 'CHECK', pod: LabPod): Promise<unknown> {
  const r = await runner.run(inNode(view, [PLUGIN_ON_NODE]), { input: pluginConfig(nodeConflist(view)), env: cniEnv(command, pod), allowFail: true, timeoutMs: 30_000 });
  const out = r.stdout.trim();
  if (r.code !== 0) {
    let msg = out || r.stderr.trim();
    try {
      const e = JSON.parse(out) as { code?: number; msg?: string; details?: string };
      msg = `error ${e.code}: ${e.msg}${e.details ? ` (${e.details})` : ''}`;
    } catch {
      // not JSON: keep the raw text
    }
    throw new Error(`CNI ${command} of pod ${pod.name} on ${pod.node} failed: ${msg}`);
  }
  return out ? JSON.parse(out) : undefined;
}

interface CniResult {
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; interface?: number }[];
}

/** CNI ADD; returns the pod's address as the plugin reported it. */
export async function addPod(runner: Runner, view: NodeView, pod: LabPod): Promise<LabPodState> {
  const result = (await callPlugin(runner, view, 'ADD', pod)) as CniResult;
  const ip = result.ips?.[0];
  if (!ip) throw new Error(`CNI ADD of pod ${pod.name} on ${pod.node} returned no IP: ${JSON.stringify(result)}`);
  const mac = ip.interface !== undefined ? result.interfaces?.[ip.interface]?.mac : undefined;
  return { ip: ip.address.split('/')[0]!, ...(mac && { mac }) };
}

export async function delPod(runner: Runner, view: NodeView, pod: LabPod): Promise<void> {
  await callPlugin(runner, view, 'DEL', pod);
}
