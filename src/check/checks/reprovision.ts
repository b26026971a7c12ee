// Re-provisioning one minion with one changed value (ipsec.dpdDelay) through the product's
// own `kube-ipsec provision --node`: on that minion, only the units the product's restart map
// names for the files that changed are restarted or reloaded — systemd's timestamps and main
// PIDs say what really happened — and strongSwan runs with the new value; every other VM is
// untouched (same files, same units, same timestamps). The value is then put back the same way.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { PATHS, UNITS } from '../../plan/paths.ts';
import { affectedUnits, parseRestartMap, type RestartAction } from '../../render/restarts.ts';
import { nodesWithPods, readNodeFile, type CheckTarget } from '../target.ts';

type Provisioning = NonNullable<CheckTarget['provisioning']>;
import { meshStatus } from '../mesh.ts';
import { notSingle, settleMesh } from './tunnels.ts';
import { mapLimit } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import { waitFor } from '../../run.ts';
import { nodeUnits, showUnits } from '../systemd.ts';
import { idleUnits, readUnitState } from './units.ts';

export interface NodeSnapshot {
  node: string;
  /** Installed path → sha256. */
  files: Map<string, string>;
  /** Unit → ActiveEnterTimestampMonotonic and MainPID. */
  units: Map<string, { entered: string; pid: string }>;
}

/** What provisioning did to a node's units, from its report lines (`minion2: reload strongswan-starter.service`). */
export function reportedActions(output: string, node: string): { unit: string; action: RestartAction }[] {
  return [...output.matchAll(new RegExp(`^${node}: (restart|reload) (\\S+)$`, 'gm'))].map((m) => ({ unit: m[2]!, action: m[1] as RestartAction }));
}

async function snapshot(lab: CheckTarget, node: string): Promise<NodeSnapshot> {
  const units = [UNITS.modulesLoad, UNITS.sysctl, ...(await nodeUnits(lab, node))];
  const hashes = await lab.runner.run(
    lab.backend.onNode(node, ['sh', '-c', `awk -F'\\t' '!/^#/ && NF == 2 { print $2 }' ${PATHS.provisionStateDir}/installed.tsv | xargs -r sha256sum`]),
    { timeoutMs: 120_000 },
  );
  const files = new Map(
    hashes.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(66), l.slice(0, 64)] as [string, string]),
  );
  const shown = await showUnits(lab, node, units, ['ActiveEnterTimestampMonotonic', 'MainPID']);
  return { node, files, units: new Map([...shown].map(([u, p]) => [u, { entered: p.ActiveEnterTimestampMonotonic ?? '', pid: p.MainPID ?? '' }])) };
}

export function changedFiles(before: NodeSnapshot, after: NodeSnapshot): string[] {
  const paths = new Set([...before.files.keys(), ...after.files.keys()]);
  return [...paths].filter((p) => before.files.get(p) !== after.files.get(p)).sort();
}

/** Units whose activation (timestamp) or main process changed between two snapshots. */
export function touchedUnits(before: NodeSnapshot, after: NodeSnapshot): { restarted: string[]; newPid: string[] } {
  const restarted: string[] = [];
  const newPid: string[] = [];
  for (const [u, b] of before.units) {
    const a = after.units.get(u);
    if (!a) continue;
    if (a.entered !== b.entered) restarted.push(u);
    if (a.pid !== b.pid) newPid.push(u);
  }
  return { restarted, newPid };
}

export interface ReprovisionRound {
  value: string;
  victim: string;
  changed: string[];
  expected: { unit: string; action: RestartAction }[];
  reported: { unit: string; action: RestartAction }[];
  victimTouched: { restarted: string[]; newPid: string[] };
  /** Other VMs: files changed and units touched (all must be empty). */
  others: { node: string; files: string[]; units: string[] }[];
  /** dpd_delay charon reports for the victim's connections. */
  dpdSeen: string[];
}

export function roundProblems(r: ReprovisionRound): string[] {
  const problems: string[] = [];
  const key = (x: { unit: string; action: string }) => `${x.action} ${x.unit}`;
  if (!r.changed.length) problems.push(`re-provisioning ${r.victim} with ipsec.dpdDelay = ${r.value} installed no changed file`);
  const exp = r.expected.map(key).sort().join(', ');
  const rep = r.reported.map(key).sort().join(', ');
  if (exp !== rep)
    problems.push(`${r.victim}: provisioning did ${rep || 'nothing'} to its units; its restart map says ${exp || 'nothing'} for ${r.changed.join(', ')}`);
  const restartedExpected = r.expected.filter((x) => x.action === 'restart').map((x) => x.unit);
  for (const u of restartedExpected)
    if (!r.victimTouched.restarted.includes(u)) problems.push(`${r.victim}: ${u} should have restarted, but systemd shows the same activation time`);
  for (const u of r.victimTouched.restarted)
    if (!restartedExpected.includes(u)) problems.push(`${r.victim}: ${u} was restarted (new ActiveEnterTimestamp) although nothing it depends on changed`);
  for (const u of r.expected.filter((x) => x.action === 'reload').map((x) => x.unit)) {
    if (r.victimTouched.newPid.includes(u) && !restartedExpected.includes(u))
      problems.push(`${r.victim}: ${u} got a new main process: it was restarted, not reloaded (its tunnels went down)`);
  }
  for (const o of r.others) {
    if (o.files.length || o.units.length)
      problems.push(`${o.node} was touched by re-provisioning ${r.victim}: ${[...o.files, ...o.units.map((u) => `${u} restarted`)].join(', ')}`);
  }
  const seconds = String(parseInt(r.value, 10));
  if (!r.dpdSeen.length || r.dpdSeen.some((d) => d !== seconds))
    problems.push(
      `${r.victim}: charon's connections have dpd_delay ${r.dpdSeen.join('/') || 'unknown'}, not ${seconds} s: the reload did not apply the new ipsec.conf`,
    );
  return problems;
}

async function dpdDelays(lab: CheckTarget, node: string): Promise<string[]> {
  const r = await lab.runner.run(lab.backend.onNode(node, ['swanctl', '--list-conns', '--pretty']), { allowFail: true, timeoutMs: 30_000 });
  return [...r.stdout.matchAll(/^\s*dpd_delay = (\S+)$/gm)].map((m) => m[1]!);
}

function setDpdDelay(file: string, value: string): void {
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.setIn(['ipsec', 'dpdDelay'], value);
  writeFileSync(file, doc.toString());
}

async function round(lab: CheckTarget, provisioning: Provisioning, victim: string, value: string): Promise<ReprovisionRound> {
  const names = lab.topology.nodes.map((n) => n.name);
  const before = await mapLimit(names, 3, (n) => snapshot(lab, n));
  setDpdDelay(provisioning.configFile, value);
  const output = await provisioning.provision(['--node', victim]);
  const after = await mapLimit(names, 3, (n) => snapshot(lab, n));
  const b = before.find((s) => s.node === victim)!;
  const a = after.find((s) => s.node === victim)!;
  const changed = changedFiles(b, a);
  const rules = parseRestartMap((await readNodeFile(lab, victim, PATHS.restartMap)) ?? '');
  const s = await readUnitState(lab, victim);
  const idle = idleUnits(s.units, s.props, s.present);
  return {
    value,
    victim,
    changed,
    expected: affectedUnits(rules, new Set(changed)).filter((x) => !idle.has(x.unit)),
    reported: reportedActions(output, victim),
    victimTouched: touchedUnits(b, a),
    others: before
      .filter((s) => s.node !== victim)
      .map((s) => {
        const s2 = after.find((x) => x.node === s.node)!;
        return { node: s.node, files: changedFiles(s, s2), units: touchedUnits(s, s2).restarted };
      }),
    dpdSeen: await dpdDelays(lab, victim),
  };
}

export function defaultVictim(lab: CheckTarget, wanted?: string): string {
  const withPods = nodesWithPods(lab.topology);
  const victim = wanted ?? withPods[withPods.length - 1]?.name;
  if (!victim || !lab.topology.nodes.some((n) => n.name === victim)) throw new Error(`no minion to re-provision or reboot${wanted ? ` named ${wanted}` : ''}`);
  return victim;
}

export async function checkReprovision(lab: CheckTarget, opts: { rebootVictim?: string }): Promise<CheckResult> {
  const victim = defaultVictim(lab, opts.rebootVictim);
  const provisioning = lab.provisioning;
  if (!provisioning) throw new Error('re-provisioning needs the cluster.yaml the nodes were provisioned from');
  const file = provisioning.configFile;
  const original = readFileSync(file, 'utf8');
  const current = String(parseDocument(original).getIn(['ipsec', 'dpdDelay']) ?? '5s');
  const value = current === '7s' ? '9s' : '7s';
  let rounds: ReprovisionRound[] = [];
  try {
    rounds.push(await round(lab, provisioning, victim, value));
  } finally {
    // Whatever happened, the lab goes back to its own configuration.
    writeFileSync(file, original);
  }
  const back = await round(lab, provisioning, victim, current).catch((err: Error) => err);
  const meshUp = await waitFor(async () => (await meshStatus(lab)).every((p) => p.up), 60_000, 250);
  const problems = rounds.flatMap(roundProblems);
  if (back instanceof Error) problems.push(`putting ipsec.dpdDelay back to ${current} on ${victim} failed: ${back.message}`);
  else problems.push(...roundProblems(back));
  if (!meshUp) problems.push(`after re-provisioning ${victim} not every tunnel is up`);
  else for (const p of notSingle(await settleMesh(lab))) problems.push(`after re-provisioning ${victim}: ${p}`);
  rounds = back instanceof Error ? rounds : [...rounds, back];
  const lines = rounds.map(
    (r) =>
      `ipsec.dpdDelay = ${r.value}: ${r.victim} installed ${r.changed.join(', ') || 'nothing'}; ${r.reported.map((x) => `${x.action} ${x.unit}`).join(', ') || 'no unit touched'}; restarted per systemd: ${r.victimTouched.restarted.join(', ') || 'none'}; charon dpd_delay ${r.dpdSeen.join('/')}; other VMs untouched: ${r.others.every((o) => !o.files.length && !o.units.length) ? 'yes' : 'NO'}`,
  );
  return {
    name: 'reprovision',
    ok: problems.length === 0,
    summary: `re-provisioned ${victim} with ipsec.dpdDelay ${current} → ${value} → ${current}: only the units its restart map names were touched, the other VMs not at all`,
    lines,
    problems,
  };
}
