// `lab check`: the running lab against what the rendered cluster promises. Each check is a
// small function returning a typed result; a check that cannot even run is a failure with
// the reason, never a pass. fail-closed runs last: it stops and restarts strongSwan on a node.
import { checkFailClosed } from './checks/fail-closed.ts';
import { checkMasquerade } from './checks/masquerade.ts';
import { checkMtu } from './checks/mtu.ts';
import { checkTraffic } from './checks/traffic.ts';
import { checkTunnels } from './checks/tunnels.ts';
import { LabError } from './host.ts';
import { requireUp, type Lab } from './lab.ts';
import { isVmBackend } from './vm/backend.ts';
import type { PairStatus } from './mesh.ts';
import { Reachability } from './probe.ts';
import { CHECK_NAMES, report, type CheckName, type CheckReport, type CheckResult } from './report.ts';

export interface CheckOptions {
  /** Node whose strongSwan the fail-closed check stops (default: the first node with pods). */
  victim?: string;
  /** VM lab: the minion the reboot check reboots and the reprovision check re-provisions (default: the last node with pods). */
  rebootVictim?: string;
  /** VM lab: the plugin provisioning ships (reprovision check). */
  plugin?: string;
  /** Run only these checks (tunnels always runs: the others read its result). */
  only?: CheckName[];
  /** Called with each result as soon as it is known. */
  onResult?: (r: CheckResult) => void;
}

export async function check(lab: Lab, opts: CheckOptions = {}): Promise<CheckReport> {
  requireUp(lab);
  if (opts.victim !== undefined && !lab.topology.nodes.some((n) => n.name === opts.victim)) {
    throw new LabError(`--victim ${opts.victim} is not a node of the lab (nodes: ${lab.topology.nodes.map((n) => n.name).join(', ')})`);
  }
  // A VM's master ssh connection ends with the process that opened it, or a reboot.
  if (isVmBackend(lab.backend)) await lab.backend.connect();
  const wanted = (name: CheckName) => !opts.only || opts.only.includes(name);
  const results: CheckResult[] = [];
  const add = (r: CheckResult) => {
    results.push(r);
    opts.onResult?.(r);
  };
  let pairs: PairStatus[] = [];
  const reach = new Reachability(lab);
  await guarded(['tunnels'], add, async () => {
    const t = await checkTunnels(lab);
    pairs = t.pairs;
    return [t.result];
  });
  if (wanted('pings') || wanted('capture')) {
    await guarded(['pings', 'capture'], add, async () => (await checkTraffic(lab, pairs, reach)).filter((r) => wanted(r.name)));
  }
  if (wanted('masquerade')) await guarded(['masquerade'], add, async () => [await checkMasquerade(lab, pairs)]);
  if (wanted('mtu')) await guarded(['mtu'], add, async () => [await checkMtu(lab, reach)]);
  const vm = isVmBackend(lab.backend) ? await import('./vm/checks.ts') : undefined;
  for (const c of vm?.beforeFailClosed ?? []) if (wanted(c.name)) await guarded([c.name], add, async () => [await c.run(lab, opts)]);
  if (wanted('fail-closed')) await guarded(['fail-closed'], add, async () => [await checkFailClosed(lab, reach, opts.victim)]);
  for (const c of vm?.afterFailClosed ?? []) if (wanted(c.name)) await guarded([c.name], add, async () => [await c.run(lab, opts)]);
  return report(lab.topology.prefix, results);
}

async function guarded(names: CheckName[], add: (r: CheckResult) => void, run: () => Promise<CheckResult[]>): Promise<void> {
  try {
    for (const r of await run()) add(r);
  } catch (err) {
    for (const name of names) add({ name, ok: false, summary: 'could not run', problems: [`${name} could not run: ${(err as Error).message}`] });
  }
}

export { CHECK_NAMES };
