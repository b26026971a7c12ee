// Pods, made the way the kubelet's runtime makes them: a sandbox network namespace, then
// the node's CNI plugin (/opt/cni/bin/ipsec-cni, run inside the node, so its IPAM store
// and log land in the node's own /var) with the node's rendered conflist.
import { PATHS } from '../plan/paths.ts';
import { readNodeFile, type LabExec } from './backend.ts';
import { PLUGIN_ON_NODE } from './boot.ts';
import { NETNS_DIR } from './procs.ts';
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

/** The node's installed conflist (what its runtime would hand the plugin). */
export async function nodeConflist(lab: LabExec, node: string): Promise<string> {
  const text = await readNodeFile(lab, node, PATHS.cniConflist);
  if (text === undefined) throw new Error(`${node} has no ${PATHS.cniConflist}: it was not installed`);
  return text;
}

export function cniEnv(command: 'ADD' | 'DEL' | 'CHECK', pod: LabPod): Record<string, string> {
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
export function pluginArgv(env: Record<string, string>): string[] {
  return ['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), PLUGIN_ON_NODE];
}

async function callPlugin(lab: LabExec, command: 'ADD' | 'DEL' | 'CHECK', pod: LabPod): Promise<unknown> {
  return runPlugin(lab, pod.node, cniEnv(command, pod), {}, `CNI ${command} of pod ${pod.name} on ${pod.node}`);
}

async function runPlugin(lab: LabExec, node: string, env: Record<string, string>, extraConfig: Record<string, unknown>, what: string): Promise<unknown> {
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
export async function addPod(lab: LabExec, pod: LabPod): Promise<LabPodState> {
  const result = (await callPlugin(lab, 'ADD', pod)) as CniResult;
  const ip = result.ips?.[0];
  if (!ip) throw new Error(`CNI ADD of pod ${pod.name} on ${pod.node} returned no IP: ${JSON.stringify(result)}`);
  const mac = ip.interface !== undefined ? result.interfaces?.[ip.interface]?.mac : undefined;
  return { ip: ip.address.split('/')[0]!, ...(mac && { mac }) };
}

export async function delPod(lab: LabExec, pod: LabPod): Promise<void> {
  await callPlugin(lab, 'DEL', pod);
}

/**
 * CNI GC on a node, as a runtime runs it after a restart: every attachment not in `valid`
 * (the pods it still has) is released.
 */
export async function gcNode(lab: LabExec, node: string, valid: readonly LabPod[]): Promise<void> {
  const env = { PATH: cniEnv('ADD', { node, name: '', ns: '', containerId: '' }).PATH!, CNI_COMMAND: 'GC', CNI_PATH: PATHS.cniBinDir };
  const attachments = valid.map((p) => ({ containerID: p.containerId, ifname: POD_IFNAME }));
  await runPlugin(lab, node, env, { 'cni.dev/valid-attachments': attachments }, `CNI GC on ${node}`);
}
