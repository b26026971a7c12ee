// The nodes' units as systemd in each VM runs them: every unit whose program is installed is
// enabled and active; every unit whose program is absent (no Kubernetes binaries here) is
// installed, loads, passes `systemd-analyze verify` but for that program, and is neither
// enabled nor started; the bring-up order holds in the unit files (After=/Requires=) and in
// what systemd did (the node network was up before strongSwan started); etcd on the master
// answers with the rendered certificates.
import { PATHS, UNITS } from '../../plan/paths.ts';
import type { CheckTarget } from '../target.ts';
import { mapLimit } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import { execPath, micros, nodeUnits, showUnits, unitList, type UnitProps } from '../systemd.ts';

export interface NodeUnits {
  node: string;
  units: string[];
  props: Map<string, UnitProps>;
  /** Programs of the units' ExecStart that exist on the node. */
  present: Set<string>;
  /** `systemd-analyze verify` lines about the idle units. */
  verify: string[];
  /** etcd's /health on the master (undefined elsewhere). */
  etcdHealth?: string;
}

/** Units that cannot run: their program is absent, or they need (Requires=, socket → service) one that cannot. */
export function idleUnits(units: string[], props: Map<string, UnitProps>, present: Set<string>): Map<string, string> {
  const idle = new Map<string, string>();
  for (let more = true; more; ) {
    more = false;
    for (const u of units) {
      if (idle.has(u)) continue;
      const p = props.get(u);
      const program = execPath(p?.ExecStart);
      const needs = unitList(p?.Requires).find((r) => idle.has(r));
      const service = u.endsWith('.socket') ? u.replace(/\.socket$/, '.service') : undefined;
      const why =
        program && !present.has(program) ? `no ${program}` : needs ? `needs ${needs}` : service && idle.has(service) ? `activates ${service}` : undefined;
      if (why) {
        idle.set(u, why);
        more = true;
      }
    }
  }
  return idle;
}

/** Ordering the rendered units promise, as systemd loaded them: [unit, must be after]. */
export function orderingRules(units: string[]): [string, string][] {
  const has = (u: string) => units.includes(u);
  const rules: [string, string][] = [];
  if (has(UNITS.strongswan)) rules.push([UNITS.strongswan, UNITS.nodeNetwork]);
  // Not cri-docker.socket: a socket only listens, and ordering it after an ordinary service is a
  // boot cycle (sockets.target comes before basic.target); the service it activates is ordered.
  for (const u of [UNITS.docker, UNITS.containerd, UNITS.criDockerService, UNITS.kubelet]) if (has(u)) rules.push([u, UNITS.nodeNetwork]);
  if (has(UNITS.kubelet)) rules.push([UNITS.kubelet, UNITS.strongswan]);
  return rules;
}

export function unitsProblems(n: NodeUnits): { idle: Map<string, string>; running: string[]; problems: string[] } {
  const problems: string[] = [];
  const idle = idleUnits(n.units, n.props, n.present);
  const running: string[] = [];
  for (const u of n.units) {
    const p = n.props.get(u)!;
    if (p.LoadState !== 'loaded') {
      problems.push(`${n.node}: ${u} is ${p.LoadState ?? 'not known'} (provisioning should have installed ${PATHS.systemdDir}/${u})`);
      continue;
    }
    if (idle.has(u)) {
      if (p.ActiveState !== 'inactive') problems.push(`${n.node}: ${u} is ${p.ActiveState} although it cannot run (${idle.get(u)}): provisioning started it`);
      if (p.UnitFileState === 'enabled') problems.push(`${n.node}: ${u} is enabled although it cannot run (${idle.get(u)}): it would fail at every boot`);
      const complaints = n.verify.filter((l) => l.startsWith(`${u}: `) && !/: Command \S+ is not executable: No such file or directory$/.test(l));
      for (const c of complaints) problems.push(`${n.node}: systemd-analyze verify ${u}: ${c.slice(u.length + 2)}`);
    } else {
      running.push(u);
      if (p.ActiveState !== 'active') problems.push(`${n.node}: ${u} is ${p.ActiveState}/${p.SubState}, not active (journalctl -u ${u} on ${n.node})`);
      if (p.UnitFileState !== 'enabled' && !u.endsWith('.socket'))
        problems.push(`${n.node}: ${u} is ${p.UnitFileState}, not enabled: it will not come back after a reboot`);
    }
  }
  for (const [unit, after] of orderingRules(n.units)) {
    if (!unitList(n.props.get(unit)?.After).includes(after))
      problems.push(
        `${n.node}: ${unit} is not ordered after ${after} (After= in ${PATHS.systemdDir}/${unit}): it may start before ${after === UNITS.nodeNetwork ? 'the pod bridge, blackhole route and iptables rules exist' : 'the tunnels'}`,
      );
  }
  const net = n.props.get(UNITS.nodeNetwork);
  const swan = n.props.get(UNITS.strongswan);
  if (net && swan && micros(swan, 'InactiveExitTimestampMonotonic') < micros(net, 'ActiveEnterTimestampMonotonic')) {
    problems.push(`${n.node}: strongSwan began starting before ${UNITS.nodeNetwork} had finished`);
  }
  if (n.etcdHealth !== undefined && !/"health":\s*"true"/.test(n.etcdHealth))
    problems.push(`${n.node}: etcd's /health over TLS with the rendered client certificate said: ${n.etcdHealth.trim() || 'nothing'}`);
  return { idle, running, problems };
}

/** The node's units, their properties and which of their programs exist. */
export async function readUnitState(lab: CheckTarget, node: string): Promise<Pick<NodeUnits, 'node' | 'units' | 'props' | 'present'>> {
  const units = await nodeUnits(lab, node);
  const props = await showUnits(lab, node, units);
  const programs = [...new Set(units.map((u) => execPath(props.get(u)?.ExecStart)).filter((p): p is string => p !== undefined))];
  const exists = await lab.runner.run(lab.backend.onNode(node, ['sh', '-c', 'for p; do [ -e "$p" ] && echo "$p"; done; true', 'exists', ...programs]), {
    timeoutMs: 30_000,
  });
  return { node, units, props, present: new Set(exists.stdout.split('\n').filter(Boolean)) };
}

async function readNodeUnits(lab: CheckTarget, node: string): Promise<NodeUnits> {
  const { units, props, present } = await readUnitState(lab, node);
  const idle = idleUnits(units, props, present);
  let verify: string[] = [];
  if (idle.size) {
    const r = await lab.runner.run(lab.backend.onNode(node, ['systemd-analyze', 'verify', ...[...idle.keys()].map((u) => `${PATHS.systemdDir}/${u}`)]), {
      allowFail: true,
      timeoutMs: 120_000,
    });
    verify = (r.stdout + r.stderr).split('\n').filter(Boolean);
  }
  let etcdHealth: string | undefined;
  if (units.includes(UNITS.etcd) && !idle.has(UNITS.etcd)) {
    const r = await lab.runner.run(
      lab.backend.onNode(node, [
        'curl',
        '-sS',
        '--max-time',
        '10',
        '--cacert',
        PATHS.etcdCaCert,
        '--cert',
        PATHS.etcdHealthcheckClientCert,
        '--key',
        PATHS.etcdHealthcheckClientKey,
        'https://127.0.0.1:2379/health',
      ]),
      { allowFail: true, timeoutMs: 30_000 },
    );
    etcdHealth = r.stdout + r.stderr;
  }
  return { node, units, props, present, verify, ...(etcdHealth !== undefined && { etcdHealth }) };
}

export async function checkUnits(lab: CheckTarget): Promise<CheckResult> {
  const read = await mapLimit(lab.topology.nodes, 3, (n) => readNodeUnits(lab, n.name));
  const lines: string[] = [];
  const problems: string[] = [];
  let idleCount = 0;
  for (const n of read) {
    const r = unitsProblems(n);
    idleCount += r.idle.size;
    lines.push(`${n.node}: running ${r.running.join(', ') || 'nothing'}`);
    if (r.idle.size)
      lines.push(`${' '.repeat(n.node.length)}  idle (installed, verified, not started): ${[...r.idle].map(([u, why]) => `${u} (${why})`).join(', ')}`);
    if (n.etcdHealth !== undefined) lines.push(`${' '.repeat(n.node.length)}  etcd /health with the rendered client certificate: ${n.etcdHealth.trim()}`);
    problems.push(...r.problems);
  }
  return {
    name: 'units',
    ok: problems.length === 0,
    summary: `${read.length} nodes: every unit with its program active and enabled, ${idleCount} units without one installed, verified and idle, bring-up order kept`,
    lines,
    problems,
    values: { idle: idleCount },
  };
}
