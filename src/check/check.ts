// `check`: a running cluster against what its rendered files promise — the namespace lab, the
// VM lab or any provisioned cluster. Each check is a small function returning a typed result;
// a check that cannot even run is a failure with the reason, never a pass, and one that does
// not apply to this cluster says why and is not counted as passed. Checks that change the
// running cluster (strongSwan stopped, lifetimes shortened, a node re-provisioned or
// rebooted) run after the others, and on a real cluster only when named.
import { checkFailClosed } from './checks/fail-closed.ts';
import { checkInbound, inboundNotApplicable } from './checks/inbound.ts';
import { checkKernelEsp } from './checks/kernel-esp.ts';
import { checkMasquerade } from './checks/masquerade.ts';
import { checkMtu } from './checks/mtu.ts';
import { checkReboot } from './checks/reboot.ts';
import { checkReprovision } from './checks/reprovision.ts';
import { checkNodeTraffic, nodeTrafficNotApplicable } from './checks/node-traffic.ts';
import { checkRekey, rekeyTooLong } from './checks/rekey.ts';
import { checkSources } from './checks/sources.ts';
import { checkTraffic } from './checks/traffic.ts';
import { checkTunnels } from './checks/tunnels.ts';
import { checkUnits } from './checks/units.ts';
import { CheckError } from './errors.ts';
import type { PairStatus } from './mesh.ts';
import { Reachability } from './probe.ts';
import { CHECK_NAMES, report, type CheckName, type CheckReport, type CheckResult } from './report.ts';
import type { CheckTarget } from './target.ts';

export interface CheckOptions {
  /** Node whose strongSwan the fail-closed check stops (default: the first node with pods). */
  victim?: string;
  /** The node the reboot check reboots and the reprovision check re-provisions (default: the last node with pods). */
  rebootVictim?: string;
  /** Run only these checks (tunnels always runs: the others read its result). */
  only?: CheckName[];
  /** Checks that change the running cluster: run them all (the labs), or only those named in `only` (real clusters). */
  destructive?: 'all' | 'named';
  /** Called with each result as soon as it is known. */
  onResult?: (r: CheckResult) => void;
}

/** What the checks share while they run: the mesh as `tunnels` found it, who reaches whom. */
interface CheckRun {
  target: CheckTarget;
  opts: CheckOptions;
  pairs: PairStatus[];
  reach: Reachability;
}

interface CheckSpec {
  /** The results it produces (traffic produces pings and capture). */
  names: CheckName[];
  /** Changes the running cluster. */
  destructive?: boolean;
  /** Why it does not apply to this cluster, or to this run (undefined: it does). */
  notApplicable?(t: CheckTarget, opts: CheckOptions): string | undefined;
  run(r: CheckRun): Promise<CheckResult[]>;
}

const kernelEsp = (t: CheckTarget) =>
  t.espMode === 'kernel' ? undefined : "ESP runs in strongSwan's userspace here (kernel-libipsec): there are no kernel SAs to look at";
const systemd = (t: CheckTarget): string | undefined => {
  if (t.backend.systemd) return undefined;
  // Said by the backend when it knows which nodes and why; namespaces on one host otherwise.
  return t.backend.noSystemd ?? 'the nodes run no systemd here (network namespaces on one host)';
};

/** Every check, in the order they run. */
const SPECS: CheckSpec[] = [
  {
    names: ['tunnels'],
    run: async (r) => {
      const t = await checkTunnels(r.target);
      r.pairs = t.pairs;
      return [t.result];
    },
  },
  { names: ['pings', 'capture'], run: (r) => checkTraffic(r.target, r.pairs, r.reach) },
  { names: ['sources'], run: async (r) => [await checkSources(r.target, r.pairs)] },
  { names: ['inbound'], notApplicable: (t) => inboundNotApplicable(t.topology), run: async (r) => [await checkInbound(r.target)] },
  { names: ['node-traffic'], notApplicable: (t) => nodeTrafficNotApplicable(t.topology), run: async (r) => [await checkNodeTraffic(r.target)] },
  {
    names: ['masquerade'],
    notApplicable: (t) => (t.topology.upstream ? undefined : 'no machine outside the cluster to send pod egress to (the labs have their upstream router)'),
    run: async (r) => [await checkMasquerade(r.target, r.pairs)],
  },
  { names: ['mtu'], run: async (r) => [await checkMtu(r.target, r.reach)] },
  { names: ['kernel-esp'], notApplicable: kernelEsp, run: async (r) => [await checkKernelEsp(r.target)] },
  { names: ['units'], notApplicable: systemd, run: async (r) => [await checkUnits(r.target)] },
  {
    names: ['rekey'],
    // Lifetimes of hours would keep the check running for hours: only when asked for by name.
    notApplicable: (t, opts) => (opts.only?.includes('rekey') ? undefined : rekeyTooLong(t.topology.lifetimes)),
    run: async (r) => [await checkRekey(r.target)],
  },
  { names: ['fail-closed'], destructive: true, run: async (r) => [await checkFailClosed(r.target, r.reach, r.opts.victim)] },
  {
    names: ['reprovision'],
    destructive: true,
    notApplicable: (t) => (t.provisioning ? undefined : 'the check was not given a cluster.yaml to re-provision from') ?? systemd(t),
    run: async (r) => [await checkReprovision(r.target, r.opts)],
  },
  {
    names: ['reboot'],
    destructive: true,
    notApplicable: (t) => systemd(t) ?? (t.backend.reachable && t.backend.connect ? undefined : 'the nodes cannot be watched going down and coming back'),
    run: async (r) => [await checkReboot(r.target, r.opts)],
  },
];

export async function check(target: CheckTarget, opts: CheckOptions = {}): Promise<CheckReport> {
  const nodes = target.topology.nodes.map((n) => n.name);
  for (const [flag, node] of [
    ['--victim', opts.victim],
    ['--reboot-victim', opts.rebootVictim],
  ] as const) {
    if (node !== undefined && !nodes.includes(node)) throw new CheckError(`${flag} ${node} is not a node of ${target.label} (nodes: ${nodes.join(', ')})`);
  }
  const unknown = (opts.only ?? []).filter((n) => !CHECK_NAMES.includes(n));
  if (unknown.length) throw new CheckError(`unknown check(s) ${unknown.join(', ')}; known: ${CHECK_NAMES.join(', ')}`);
  target.backend.requireUp();
  // Connections to the nodes (ssh) end with the process that opened them, or a reboot.
  await target.backend.connect?.();

  const named = (name: CheckName) => opts.only?.includes(name) ?? false;
  const wanted = (s: CheckSpec) =>
    s.names[0] === 'tunnels' || (s.destructive && opts.destructive === 'named' ? s.names.some(named) : !opts.only || s.names.some(named));
  const results: CheckResult[] = [];
  const add = (r: CheckResult) => {
    if (r.name !== 'tunnels' && opts.only && !named(r.name)) return;
    results.push(r);
    opts.onResult?.(r);
  };
  const run: CheckRun = { target, opts, pairs: [], reach: new Reachability(target) };
  for (const spec of SPECS.filter(wanted)) {
    const why = spec.notApplicable?.(target, opts);
    if (why) {
      for (const name of spec.names) add({ name, ok: false, skipped: why, summary: why, problems: [] });
      continue;
    }
    try {
      for (const r of await spec.run(run)) add(r);
    } catch (err) {
      for (const name of spec.names) add({ name, ok: false, summary: 'could not run', problems: [`${name} could not run: ${(err as Error).message}`] });
    }
  }
  return report(target.label, results);
}
