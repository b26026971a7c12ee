// The VM lab's backend: each node is a qemu VM, reached over ssh from inside the lab's wire
// namespace; a pod namespace lives inside its node's VM; the wire and the upstream router
// are namespaces on this host as in the namespace lab. strongSwan is its systemd unit.
import { remoteBackground, remoteCapture } from '../../check/remote.ts';
import { NETNS_DIR, type ClusterBackend } from '../../check/target.ts';
import { labOf, type Lab, type LabParts } from '../lab.ts';
import { DEFAULT_PLUGIN } from '../plugin.ts';
import { provisionLab } from './provision.ts';
import { localBackground, localCapture } from '../local.ts';
import { inNetns } from '../network.ts';
import { isOurs } from '../procs.ts';
import type { Runner } from '../../run.ts';
import type { LabState } from '../state.ts';
import { vmNamed } from './layout.ts';
import { masterUp, openMaster, sshArgv, type SshTarget } from './ssh.ts';
import { strongswanUnit } from '../../check/systemd.ts';

export interface VmBackend extends ClusterBackend {
  readonly kind: 'vm';
  /** The ssh target of a node's VM. */
  target(node: string): SshTarget;
  /** (Re)opens the master connection of each VM that has none, recording its PID. */
  connect(nodes?: string[], timeoutMs?: number): Promise<void>;
}

/** A VM lab: its VMs reached over ssh, re-provisioned (the reprovision check) by `kube-ipsec provision` with the lab's plugin. */
export function vmLab(parts: LabParts, plugin = DEFAULT_PLUGIN): Lab {
  return labOf(parts, vmBackend(parts), (extra) => provisionLab(parts, plugin, () => {}, extra));
}

function vmBackend(lab: LabParts): VmBackend {
  const vm = lab.state.data.vm;
  if (!vm) throw new Error(`the lab in ${lab.stateDir} records no VMs`);
  const t = lab.topology;
  const target = (node: string): SshTarget => ({ wireNs: t.wire.ns, stateDir: lab.stateDir, vm: vmNamed(vm.layout, node) });
  const onNode = (node: string, argv: readonly string[]) => sshArgv(target(node), argv);
  const where = (ns: string): { node: string; pod?: string } | undefined => {
    for (const n of t.nodes) {
      if (n.ns === ns) return { node: n.name };
      if (n.pods.some((p) => p.ns === ns)) return { node: n.name, pod: ns };
    }
    return undefined;
  };
  const inNs = (ns: string, argv: readonly string[]) => {
    const w = where(ns);
    if (!w) return inNetns(ns, argv);
    return onNode(w.node, w.pod ? ['nsenter', `--net=${NETNS_DIR}/${w.pod}`, ...argv] : argv);
  };

  return {
    kind: 'vm',
    systemd: true,
    target,
    onNode,
    inNs,
    ...strongswanUnit((node, argv, o) => lab.runner.run(onNode(node, argv), o)),
    requireUp() {
      const dead = t.nodes.filter((n) => !lab.state.data.processes.some((p) => p.role === 'vm' && p.node === n.name && isOurs(p)));
      if (dead.length) throw new Error(`the VMs of ${dead.map((n) => n.name).join(', ')} are not running: run \`npm run lab -- down\`, then \`up --vm\` again`);
    },
    capture(ns, dev, name, filter) {
      const w = where(ns);
      return w ? remoteCapture(lab.runner, onNode, w, dev, name, filter) : localCapture(lab.state, lab.runner, ns, dev, name, filter);
    },
    captureUnderlay: (name, filter) => localCapture(lab.state, lab.runner, t.wire.ns, t.wire.bridge, name, filter),
    background(ns, argv, what) {
      const w = where(ns);
      return w ? remoteBackground(lab.runner, onNode, w, argv, what) : localBackground(lab.state, ns, argv, what);
    },
    async reachable(node) {
      return masterUp(lab.runner, target(node));
    },
    async connect(nodes = t.nodes.map((n) => n.name), timeoutMs = 20_000) {
      await Promise.all(nodes.map((node) => connectNode(lab.runner, lab.state, target(node), timeoutMs)));
    },
  };
}

/** Opens a master connection unless one is up; its PID goes into the lab's state. */
async function connectNode(runner: Runner, state: LabState, t: SshTarget, timeoutMs: number): Promise<void> {
  if (await masterUp(runner, t)) return;
  for (const p of state.data.processes.filter((x) => x.role === 'ssh' && x.node === t.vm.name && !isOurs(x))) state.removeProcess(p.pid);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = await openMaster(runner, t, Math.max(1000, deadline - Date.now()));
    if (pid) {
      state.addProcess({ pid, comm: 'ssh', ns: t.wireNs, role: 'ssh', node: t.vm.name, what: `ssh master connection to ${t.vm.name}` });
      return;
    }
    if (Date.now() >= deadline) throw new Error(`${t.vm.name}: sshd at ${t.vm.mgmtIp} did not accept the lab's key within ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
