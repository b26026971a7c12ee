// The VM lab's backend: each node is a qemu VM, reached over ssh from inside the lab's wire
// namespace; a pod namespace lives inside its node's VM; the wire and the upstream router
// are namespaces on this host as in the namespace lab. strongSwan is its systemd unit.
import { shellQuote } from '../../shell.ts';
import type { LabBackend } from '../backend.ts';
import type { Capture } from '../capture.ts';
import type { Lab } from '../lab.ts';
import { inNetns } from '../network.ts';
import { NETNS_DIR, isOurs } from '../procs.ts';
import { waitFor, type Runner } from '../run.ts';
import type { LabState } from '../state.ts';
import type { LabTopology } from '../topology.ts';
import { vmNamed } from './layout.ts';
import { QEMU_COMM } from './qemu.ts';
import { masterUp, openMaster, sshArgv, type SshTarget } from './ssh.ts';
import { parseShow } from './systemd.ts';

export const STRONGSWAN_UNIT = 'strongswan-starter.service';
/** Where remote captures are written inside a VM (tmpfs). */
const REMOTE_DIR = '/run/kube-ipsec-lab';

export interface VmBackend extends LabBackend {
  readonly kind: 'vm';
  /** The ssh target of a node's VM. */
  target(node: string): SshTarget;
  /** (Re)opens the master connection of each VM that has none, recording its PID. */
  connect(nodes?: string[], timeoutMs?: number): Promise<void>;
}

export function isVmBackend(b: LabBackend): b is VmBackend {
  return b.kind === 'vm';
}

export function vmBackend(lab: Omit<Lab, 'backend'>): VmBackend {
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
  const run = (node: string, argv: readonly string[], allowFail = false, timeoutMs = 60_000) => lab.runner.run(onNode(node, argv), { allowFail, timeoutMs });

  return {
    kind: 'vm',
    target,
    onNode,
    inNs,
    async startStrongswan(node) {
      await run(node, ['systemctl', 'start', STRONGSWAN_UNIT]);
      const up = await waitFor(async () => /^Connections:/m.test((await run(node, ['ipsec', 'statusall'], true, 20_000)).stdout), 30_000, 250);
      if (!up) throw new Error(`strongSwan on ${node} started but charon has no connections after 30 s (journalctl -u ${STRONGSWAN_UNIT} on ${node})`);
    },
    async stopStrongswan(node) {
      await run(node, ['systemctl', 'stop', STRONGSWAN_UNIT]);
    },
    async strongswanState(node) {
      const r = await run(node, ['systemctl', 'show', '-p', 'ActiveState,MainPID', STRONGSWAN_UNIT], true, 20_000);
      const props = parseShow(r.stdout)[0] ?? {};
      if (r.code !== 0) return { pids: [], detail: `unknown (${r.stderr.trim() || 'ssh failed'})` };
      const pid = Number(props.MainPID);
      return { pids: props.ActiveState === 'active' && pid > 0 ? [pid] : [], detail: `${props.ActiveState ?? '?'} (unit, pid ${props.MainPID ?? '?'})` };
    },
    requireUp() {
      const dead = t.nodes.filter((n) => !lab.state.data.processes.some((p) => p.role === 'vm' && p.node === n.name && isOurs(p)));
      if (dead.length) throw new Error(`the VMs of ${dead.map((n) => n.name).join(', ')} are not running: run \`npm run lab -- down\`, then \`up --vm\` again`);
    },
    remoteCapture(ns, dev, name, filter) {
      const w = where(ns);
      return w ? remoteCapture(lab.runner, onNode, w, dev, name, filter) : undefined;
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

/**
 * tcpdump inside a VM (in the node's namespace or a pod's), writing to the VM's tmpfs; its
 * PID is the VM's (it dies with the VM), stopping reads the packets back over ssh.
 */
async function remoteCapture(
  runner: Runner,
  onNode: (node: string, argv: readonly string[]) => string[],
  w: { node: string; pod?: string },
  dev: string,
  name: string,
  filter: string[],
): Promise<Capture> {
  const base = `${REMOTE_DIR}/${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const file = `${base}.pcap`;
  const netns = w.pod ? ['nsenter', `--net=${NETNS_DIR}/${w.pod}`] : [];
  const tcpdump = [...netns, 'tcpdump', '--immediate-mode', '-nn', '-U', '-Z', 'root', '-i', dev, '-w', file, ...filter].map(shellQuote).join(' ');
  const started = await runner.run(onNode(w.node, ['sh', '-c', `mkdir -p ${REMOTE_DIR} && rm -f '${file}' && ${tcpdump} </dev/null >'${base}.log' 2>&1 & echo $!`]), { timeoutMs: 30_000 });
  const pid = Number(started.stdout.trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`tcpdump on ${dev} in ${w.pod ?? w.node} did not start: ${started.stdout}${started.stderr}`);
  const listening = await waitFor(async () => /listening on/.test((await runner.run(onNode(w.node, ['cat', `${base}.log`]), { allowFail: true, timeoutMs: 20_000 })).stdout), 20_000, 100);
  if (!listening) {
    const log = await runner.run(onNode(w.node, ['cat', `${base}.log`]), { allowFail: true, timeoutMs: 20_000 });
    throw new Error(`tcpdump on ${dev} in ${w.pod ?? w.node} (${w.node}) did not start: ${log.stdout.trim()}`);
  }
  let stopped: Promise<string[]> | undefined;
  const stop = async (): Promise<string[]> => {
    await new Promise((r) => setTimeout(r, 200)); // the last replies in flight
    const script = `kill -TERM ${pid} 2>/dev/null; for i in $(seq 50); do kill -0 ${pid} 2>/dev/null || break; sleep 0.1; done; tcpdump -nn -t -r '${file}' 2>/dev/null; rm -f '${file}' '${base}.log'`;
    const r = await runner.run(onNode(w.node, ['sh', '-c', script]), { allowFail: true, timeoutMs: 60_000 });
    return r.stdout.split('\n').filter(Boolean);
  };
  return { file: `${w.node}:${file}`, stop: () => (stopped ??= stop()) };
}
