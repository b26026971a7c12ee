// Rebooting one minion for real (`systemctl reboot`), with pod-range traffic flowing the whole
// time: the other nodes' pods keep pinging the minion's pods and bridge, and inside the
// minion two lab probe units send to every remote pod from its bridge address as soon as
// systemd lets them — one ordered like the kubelet (after the node network and strongSwan),
// one right after the node network and before strongSwan. Then:
//   - the underlay capture over the whole reboot holds no clear-text pod packet;
//   - after the boot the bridge, the FORWARD/NAT chains and the blackhole route are there,
//     and systemd's own record shows them up before strongSwan (and the probe ordered like
//     the kubelet) started, with the kubelet ordered after both;
//   - the tunnels come back, and traffic: how long after the reboot command is measured;
//   - the plugin's store still holds the pods that died with the boot, until the runtime's
//     cleanup (DEL of one, GC of the rest) leaves it empty; new pods get addresses and are
//     reached from every other node.
import { PATHS, UNITS } from '../../plan/paths.ts';
import { shellQuote } from '../../shell.ts';
import { classifyCapture, captureUnderlay, type CaptureSummary } from '../capture.ts';
import { blackholeCovers } from './fail-closed.ts';
import { timer } from '../../clock.ts';
import type { CheckTarget } from '../target.ts';
import { meshStatus } from '../mesh.ts';
import { notSingle, settleMesh } from './tunnels.ts';
import { createPods, delPod, gcNode, nodeConflist, readIpamStore, type Attachment } from '../pods.ts';
import { mapLimit, reaches } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import { waitFor } from '../../run.ts';
import { nodeNamed, type CheckNode, type CheckPod } from '../target.ts';
import { micros, showUnits, unitList } from '../systemd.ts';
import { defaultVictim } from './reprovision.ts';

export const PROBE_UNIT = 'kube-ipsec-lab-probe.service';
export const EARLY_PROBE_UNIT = 'kube-ipsec-lab-probe-early.service';

/** The probe units: pings from the node's bridge address to every remote pod, for `seconds`. */
export function probeUnits(gateway: string, targets: string[], seconds: number): { name: string; text: string }[] {
  const pings = targets.map((ip) => `ping -n -q -i 0.5 -w ${seconds} -I ${gateway} ${ip} >/dev/null 2>&1 &`).join(' ');
  const service = `[Service]\nExecStart=/bin/sh -c '${pings} wait'\n\n[Install]\nWantedBy=multi-user.target\n`;
  return [
    {
      name: PROBE_UNIT,
      text: `# kube-ipsec lab: pod-range traffic as soon as the kubelet's pods could send it (same ordering as kubelet.service).\n[Unit]\nDescription=kube-ipsec lab probe (ordered like the kubelet)\nAfter=${UNITS.nodeNetwork} ${UNITS.strongswan}\nWants=${UNITS.strongswan}\n\n${service}`,
    },
    {
      name: EARLY_PROBE_UNIT,
      text: `# kube-ipsec lab: pod-range traffic right after the node network, before strongSwan: only the blackhole route stands between it and the wire.\n[Unit]\nDescription=kube-ipsec lab probe (before strongSwan)\nAfter=${UNITS.nodeNetwork}\nBefore=${UNITS.strongswan}\n\n${service}`,
    },
  ];
}

export interface AfterBoot {
  bridgeAddrs: string[];
  blackholes: string;
  forward: string;
  natPostrouting: string;
  natChain: string;
  units: Map<string, Record<string, string>>;
}

/** What must hold once the minion is back (pure: messages point at the cause). */
export function afterBootProblems(node: CheckNode, podCidr: string, bridge: string, a: AfterBoot): string[] {
  const problems: string[] = [];
  const gw = node.gateway;
  if (!a.bridgeAddrs.includes(gw))
    problems.push(
      `${node.name}: after the reboot ${bridge} ${a.bridgeAddrs.length ? `has ${a.bridgeAddrs.join(', ')}` : 'does not exist'}, not ${gw} (${UNITS.nodeNetwork} did not run at boot)`,
    );
  if (!blackholeCovers(a.blackholes, podCidr))
    problems.push(`${node.name}: after the reboot there is no blackhole route for ${podCidr}: pod traffic would leave in clear while strongSwan is not up`);
  if (!/-j KUBE-IPSEC-FORWARD\b/.test(a.forward)) problems.push(`${node.name}: after the reboot FORWARD does not jump to KUBE-IPSEC-FORWARD`);
  if (!/-j KUBE-IPSEC-POSTROUTING\b/.test(a.natPostrouting))
    problems.push(`${node.name}: after the reboot nat POSTROUTING does not jump to KUBE-IPSEC-POSTROUTING`);
  if (!new RegExp(`-s ${node.podSubnet.replace(/\./g, '\\.')} ! -d ${podCidr.replace(/\./g, '\\.')} -j MASQUERADE`).test(a.natChain)) {
    problems.push(`${node.name}: after the reboot KUBE-IPSEC-POSTROUTING lacks the masquerade rule for ${node.podSubnet}`);
  }
  const net = a.units.get(UNITS.nodeNetwork);
  const ready = micros(net, 'ActiveEnterTimestampMonotonic');
  if (!ready) problems.push(`${node.name}: ${UNITS.nodeNetwork} did not become active at boot (${net?.ActiveState ?? 'unknown'})`);
  for (const unit of [UNITS.strongswan, PROBE_UNIT, EARLY_PROBE_UNIT]) {
    const began = micros(a.units.get(unit), 'InactiveExitTimestampMonotonic');
    if (!began) problems.push(`${node.name}: ${unit} did not start at boot`);
    else if (ready && began < ready)
      problems.push(`${node.name}: ${unit} began starting ${((ready - began) / 1e6).toFixed(2)} s before ${UNITS.nodeNetwork} had finished`);
  }
  const swanBegan = micros(a.units.get(UNITS.strongswan), 'InactiveExitTimestampMonotonic');
  const probeBegan = micros(a.units.get(PROBE_UNIT), 'InactiveExitTimestampMonotonic');
  if (swanBegan && probeBegan && probeBegan < swanBegan) problems.push(`${node.name}: the probe ordered like the kubelet started before strongSwan`);
  const kubeletAfter = unitList(a.units.get(UNITS.kubelet)?.After);
  if (a.units.has(UNITS.kubelet)) {
    for (const dep of [UNITS.nodeNetwork, UNITS.strongswan])
      if (!kubeletAfter.includes(dep)) problems.push(`${node.name}: kubelet.service is not ordered after ${dep}: it could start pods before it`);
  }
  return problems;
}

interface RebootMeasure {
  victim: CheckNode;
  seconds: { ssh?: number; traffic?: number; tunnels?: number };
  capture: CaptureSummary;
  after?: AfterBoot;
  /** Allocations in the store after the boot, before the runtime's cleanup, and after it. */
  staleBefore: number;
  staleAfter: number;
  /** Allocations after the new pods were added, and whether each is one of them. */
  storeAfterAdd: { count: number; unexpected: string[] };
  newPodsReached: { ok: number; of: number };
  meshBack: boolean;
  /** Pairs that did not settle back to one SA pair afterwards (their problems). */
  notSingle: string[];
  errors: string[];
}

function rebootResult(m: RebootMeasure, podCidr: string, bridge: string): CheckResult {
  const v = m.victim.name;
  const problems = [...m.errors];
  if (m.capture.clearPod.length)
    problems.push(`${m.capture.clearPod.length} clear-text pod packets on the underlay while ${v} rebooted, e.g. \`${m.capture.clearPod[0]}\``);
  if (!m.capture.esp) problems.push(`no ESP on the underlay over the whole reboot of ${v}: the traffic that should have resumed did not`);
  if (m.after) problems.push(...afterBootProblems(m.victim, podCidr, bridge, m.after));
  if (m.seconds.ssh === undefined) problems.push(`${v} did not come back (no sshd) after its reboot`);
  else if (m.seconds.tunnels === undefined) problems.push(`after its reboot ${v}'s tunnels did not all come back`);
  else if (m.seconds.traffic === undefined) problems.push(`after its reboot no remote pod reached ${v}'s bridge address`);
  if (!m.staleBefore) problems.push(`${v}'s IPAM store held no allocation after the reboot: the pods that died with the boot were never in it?`);
  if (m.staleAfter) problems.push(`${v}'s IPAM store still holds ${m.staleAfter} allocations after the runtime's cleanup (DEL, GC): they would leak addresses`);
  if (m.storeAfterAdd.unexpected.length) problems.push(`${v}'s IPAM store holds allocations of no live pod: ${m.storeAfterAdd.unexpected.join(', ')}`);
  if (m.newPodsReached.ok !== m.newPodsReached.of)
    problems.push(`only ${m.newPodsReached.ok}/${m.newPodsReached.of} pings from other nodes' pods reached ${v}'s new pods`);
  if (!m.meshBack) problems.push(`not every tunnel of the mesh is up again after ${v}'s reboot`);
  else for (const p of m.notSingle) problems.push(`after ${v}'s reboot: ${p}`);
  const s = (x?: number) => (x === undefined ? '—' : `${x.toFixed(1)} s`);
  return {
    name: 'reboot',
    ok: problems.length === 0,
    summary: `rebooted ${v}: sshd back ${s(m.seconds.ssh)}, tunnels ${s(m.seconds.tunnels)}, traffic ${s(m.seconds.traffic)} after \`systemctl reboot\`; ${m.capture.clearPod.length} clear-text pod packets among ${m.capture.total} on the underlay; store ${m.staleBefore} stale → ${m.staleAfter} after DEL+GC`,
    problems,
    values: {
      ...(m.seconds.ssh !== undefined && { rebootToSsh: m.seconds.ssh }),
      ...(m.seconds.tunnels !== undefined && { rebootToTunnels: m.seconds.tunnels }),
      ...(m.seconds.traffic !== undefined && { rebootToTraffic: m.seconds.traffic }),
      clearPod: m.capture.clearPod.length,
      esp: m.capture.esp,
      staleBefore: m.staleBefore,
      staleAfter: m.staleAfter,
    },
  };
}

/** Starts pings in the background inside a VM's namespace; resolves with a function that stops them. */
async function backgroundPings(lab: CheckTarget, ns: string, targets: string[], seconds: number): Promise<() => Promise<void>> {
  const script = `for ip; do ping -n -q -i 0.5 -w ${seconds} "$ip" >/dev/null 2>&1 </dev/null & echo $!; done`;
  const r = await lab.runner.run(lab.backend.inNs(ns, ['sh', '-c', script, 'pings', ...targets]), { timeoutMs: 30_000 });
  const pids = r.stdout.split('\n').filter((l) => /^\d+$/.test(l));
  return async () => {
    await lab.runner.run(lab.backend.inNs(ns, ['kill', ...pids]), { allowFail: true, timeoutMs: 30_000 });
  };
}

export async function checkReboot(lab: CheckTarget, opts: { rebootVictim?: string }): Promise<CheckResult> {
  const backend = lab.backend;
  const { reachable, connect } = backend;
  if (!backend.systemd || !reachable || !connect)
    throw new Error('the reboot check needs nodes that run systemd and can be watched going down and coming back');
  const t = lab.topology;
  const victim = nodeNamed(t, defaultVictim(lab, opts.rebootVictim));
  const others = t.nodes.filter((n) => n !== victim);
  const pods = lab.pods;
  const ipOf = (p: CheckPod) => pods[p.ns]?.ip ?? '';
  const bridge = await bridgeName(lab, victim);
  const errors: string[] = [];
  const m: RebootMeasure = {
    victim,
    seconds: {},
    capture: classifyCapture([], t.podCidr),
    staleBefore: 0,
    staleAfter: 0,
    storeAfterAdd: { count: 0, unexpected: [] },
    newPodsReached: { ok: 0, of: 0 },
    meshBack: false,
    notSingle: [],
    errors,
  };

  // Probe units inside the victim, enabled for the next boot.
  const remotePods = others.flatMap((n) => n.pods.map(ipOf)).filter(Boolean);
  const window = 600;
  const units = probeUnits(victim.gateway, remotePods, window);
  const install = units.map((u) => `printf '%s' ${shellQuote(u.text)} >${PATHS.systemdDir}/${u.name}`).join(' && ');
  await lab.runner.run(
    backend.onNode(victim.name, ['sh', '-c', `${install} && systemctl daemon-reload && systemctl enable --quiet ${units.map((u) => u.name).join(' ')}`]),
    { timeoutMs: 60_000 },
  );

  const stops: (() => Promise<void>)[] = [];
  const capture = await captureUnderlay(lab, `reboot-${victim.name}`, [], { acrossReboot: victim.name });
  let lines: string[] = [];
  try {
    const victimTargets = [...victim.pods.map(ipOf), victim.gateway].filter(Boolean);
    for (const n of others) stops.push(await backgroundPings(lab, (n.pods[0] ?? n).ns, victimTargets, window));
    const since = timer();
    await lab.runner.run(backend.onNode(victim.name, ['systemctl', 'reboot']), { allowFail: true, timeoutMs: 30_000 });
    await waitFor(async () => !(await reachable(victim.name)), 120_000, 250);
    try {
      await connect([victim.name], 600_000);
      m.seconds.ssh = since();
    } catch (err) {
      errors.push((err as Error).message);
    }
    if (m.seconds.ssh !== undefined) {
      const source = others.find((n) => n.pods.length)?.pods[0] ?? others[0]!;
      await Promise.all([
        waitFor(async () => reaches(lab, source.ns, victim.gateway, 1, 1), 300_000, 0).then((ok) => {
          if (ok) m.seconds.traffic = since();
        }),
        waitFor(async () => (await meshStatus(lab)).filter((p) => p.a === victim.name || p.b === victim.name).every((p) => p.up), 300_000, 250).then((ok) => {
          if (ok) m.seconds.tunnels = since();
        }),
      ]);
      m.after = await readAfterBoot(lab, victim, bridge);
    }
  } finally {
    for (const stop of stops) await stop().catch(() => {});
    await lab.runner
      .run(
        backend.onNode(victim.name, [
          'sh',
          '-c',
          `systemctl disable --now --quiet ${units.map((u) => u.name).join(' ')}; rm -f ${units.map((u) => `${PATHS.systemdDir}/${u.name}`).join(' ')}; systemctl daemon-reload`,
        ]),
        { allowFail: true, timeoutMs: 60_000 },
      )
      .catch(() => undefined);
    lines = await capture.stop();
  }
  m.capture = classifyCapture(lines, t.podCidr);

  if (m.seconds.ssh !== undefined) {
    // The runtime's cleanup after the node came back: the sandboxes died with the boot.
    try {
      // Only the check's own pods are judged: on a real cluster the store also holds the
      // runtime's pods, which are the runtime's to clean up (in the labs there are none).
      const ours = new Set(t.nodes.flatMap((n) => n.pods.map((p) => p.containerId)));
      const oursIn = (store: Record<string, Attachment>) => Object.entries(store).filter(([, a]) => ours.has(a.containerId));
      const stale = await readIpamStore(lab, victim.name);
      m.staleBefore = oursIn(stale).length;
      const first = victim.pods[0];
      if (first) await delPod(lab, first); // DEL of a sandbox whose netns is gone
      // GC: none of the check's pods is valid any more; whatever else the store holds is.
      await gcNode(
        lab,
        victim.name,
        Object.values(stale).filter((a) => !ours.has(a.containerId)),
      );

      m.staleAfter = oursIn(await readIpamStore(lab, victim.name)).length;
      const fresh = await createPods(lab, [victim.name]);
      lab.recordPods(fresh);
      const store = await readIpamStore(lab, victim.name);
      const live = new Set(victim.pods.map((p) => p.containerId));
      const mine = oursIn(store);
      m.storeAfterAdd = { count: mine.length, unexpected: mine.filter(([, a]) => !live.has(a.containerId)).map(([ip, a]) => `${ip} (${a.containerId})`) };
      const probes = others.flatMap((n) => n.pods.slice(0, 1).flatMap((src) => victim.pods.map((p) => ({ ns: src.ns, dst: fresh[p.ns]?.ip ?? '' }))));
      const ok = await mapLimit(probes, 4, (p) => reaches(lab, p.ns, p.dst, 3, 1));
      m.newPodsReached = { ok: ok.filter(Boolean).length, of: probes.length };
    } catch (err) {
      errors.push(`pods on ${victim.name} after the reboot: ${(err as Error).message}`);
    }
  }
  m.meshBack = await waitFor(async () => (await meshStatus(lab)).every((p) => p.up), 120_000, 250);
  if (m.meshBack) m.notSingle = notSingle(await settleMesh(lab));
  return rebootResult(m, t.podCidr, bridge);
}

async function bridgeName(lab: CheckTarget, node: CheckNode): Promise<string> {
  return (JSON.parse(await nodeConflist(lab, node.name)) as { plugins: { bridge: string }[] }).plugins[0]!.bridge;
}

async function readAfterBoot(lab: CheckTarget, node: CheckNode, bridge: string): Promise<AfterBoot> {
  const sh = async (script: string) =>
    (await lab.runner.run(lab.backend.onNode(node.name, ['sh', '-c', script]), { allowFail: true, timeoutMs: 60_000 })).stdout;
  const [addrs, blackholes, forward, natPostrouting, natChain] = await Promise.all([
    sh(`ip -j -4 addr show dev ${bridge} 2>/dev/null || echo []`),
    sh('ip route show type blackhole'),
    sh('iptables -w -S FORWARD'),
    sh('iptables -w -t nat -S POSTROUTING'),
    sh('iptables -w -t nat -S KUBE-IPSEC-POSTROUTING'),
  ]);
  let bridgeAddrs: string[] = [];
  try {
    bridgeAddrs = (JSON.parse(addrs) as { addr_info: { local: string }[] }[]).flatMap((l) => l.addr_info.map((a) => a.local));
  } catch {
    // no such device
  }
  const units = await showUnits(lab, node.name, [UNITS.nodeNetwork, UNITS.strongswan, UNITS.kubelet, PROBE_UNIT, EARLY_PROBE_UNIT]);
  return {
    bridgeAddrs,
    blackholes,
    forward,
    natPostrouting,
    natChain,
    units: new Map([...units].filter(([u, p]) => u !== UNITS.kubelet || p.LoadState === 'loaded')),
  };
}
