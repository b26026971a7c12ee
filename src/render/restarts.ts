// Which unit restarts (or reloads) when which installed file changes. provision/apply reads
// the result from the node's tree (/etc/kube-ipsec/restart.tsv) and only compares paths, so
// every decision about services is made here, once, where the plan is known.
//
// Most of the map is derived rather than listed: a unit depends on its unit file, its
// drop-ins, and every file of the node that file names, transitively (kubelet.service names
// /var/lib/kubelet/config.yaml, which names the CA and the serving certificate). A flag
// added to a unit therefore moves its file into the map by itself. Only units whose
// configuration is found by convention rather than by path get explicit rules: strongSwan
// (reads /etc/ipsec.*), systemd-sysctl and systemd-modules-load (read their .d directories);
// and two units reload for part of their files: strongSwan for the mesh, the node network for
// its nftables table.
import { PATHS, UNITS } from '../plan/paths.ts';
import type { Plan, PlannedNode } from '../plan/plan.ts';
import { artifactMembers, imageArchives, nodeUnits } from './artifacts.ts';
import type { RenderedFile } from './files.ts';

export type RestartAction = 'restart' | 'reload';

export interface RestartRule {
  unit: string;
  action: RestartAction;
  /** A change to any of these (content, mode, added, removed) triggers the action. */
  paths: string[];
}

/** Absolute paths as they appear in unit files and configs (`--config=/var/lib/…`, `file: /etc/…`). */
const ABSOLUTE_PATH = /\/(?:[A-Za-z0-9._@+-]+\/)*[A-Za-z0-9._@+-]+/g;

/**
 * Rules in bring-up order (DESIGN decision 6): what the OS applies at boot first, then the
 * node's units as node.env lists them. A unit's restart rule precedes its reload rule;
 * apply skips the reload of a unit it has just restarted.
 */
export function restartRules(plan: Plan, node: PlannedNode, files: readonly RenderedFile[]): RestartRule[] {
  const byPath = new Map(files.map((f) => [f.path, f]));
  // Binaries count as dependencies too: a new kubelet binary restarts kubelet.
  // So do image archives: a new archive re-runs the unit that loads it.
  const known = new Set([...byPath.keys(), ...artifactMembers(plan, node).map((m) => m.dest), ...imageArchives(plan, node).map((a) => a.dest)]);
  const closure = (roots: string[], exclude: readonly string[]): string[] => {
    const seen = new Set<string>();
    const visit = (path: string) => {
      if (seen.has(path) || !known.has(path) || exclude.includes(path)) return;
      seen.add(path);
      for (const ref of byPath.get(path)?.content.match(ABSOLUTE_PATH) ?? []) visit(ref);
    };
    roots.forEach(visit);
    return [...seen].sort();
  };
  const unitFiles = (unit: string) => [...byPath.keys()].filter((p) => p === `${PATHS.systemdDir}/${unit}` || p.startsWith(`${PATHS.systemdDir}/${unit}.d/`));

  const rules: RestartRule[] = [
    { unit: UNITS.modulesLoad, action: 'restart', paths: [PATHS.modulesLoad] },
    { unit: UNITS.sysctl, action: 'restart', paths: [PATHS.sysctl] },
  ];
  for (const unit of nodeUnits(plan, node)) {
    // Files a unit applies by a reload belong to its reload rule alone, even where the unit's
    // own files name them (the IKE gate reads ipsec.conf, the node-network script loads its
    // nftables table): a restart for them would undo the point of reloading.
    const reloadOn = reloadPaths(unit, [...byPath.keys()]);
    const restartOn = closure(unitFiles(unit), reloadOn);
    if (unit === UNITS.strongswan) {
      // charon's own settings need a new charon; the mesh (conns, secrets, certificates)
      // is re-read by a reload, which leaves the other tunnels up (the drop-in's ExecReload).
      rules.push({ unit, action: 'restart', paths: [...restartOn, PATHS.strongswanConf].sort() });
    } else {
      rules.push({ unit, action: 'restart', paths: restartOn });
    }
    if (reloadOn.length) rules.push({ unit, action: 'reload', paths: reloadOn });
  }
  return rules.map((r) => ({ ...r, paths: r.paths.filter((p) => known.has(p)) })).filter((r) => r.paths.length > 0);
}

/**
 * What a unit applies without restarting: strongSwan's mesh (conns, secrets, certificates:
 * `ipsec rereadall` + `ipsec reload`, established tunnels stay up), and the node network's
 * nftables table (replaced in one transaction by its ExecReload; a restart would also restart
 * strongSwan, which Requires= the node network).
 */
function reloadPaths(unit: string, paths: string[]): string[] {
  if (unit === UNITS.strongswan) return paths.filter((p) => p === PATHS.ipsecConf || p === PATHS.ipsecSecrets || p.startsWith('/etc/ipsec.d/')).sort();
  if (unit === UNITS.nodeNetwork) return paths.filter((p) => p === PATHS.nodeNetworkRules);
  return [];
}

export function restartMapFile(rules: readonly RestartRule[], generated: string): string {
  return [
    `# ${generated}`,
    '# unit<TAB>action<TAB>paths: when one of the paths changes, provisioning restarts or reloads',
    '# the unit. Lines are in bring-up order; a unit restarted by an earlier line is not reloaded.',
    ...rules.map((r) => [r.unit, r.action, r.paths.join(' ')].join('\t')),
    '',
  ].join('\n');
}

/** restart.tsv back into rules (what a node has installed). */
export function parseRestartMap(text: string): RestartRule[] {
  return text
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => {
      const [unit, action, paths = ''] = l.split('\t');
      if (!unit || (action !== 'restart' && action !== 'reload')) throw new Error(`restart.tsv: malformed line ${JSON.stringify(l)}`);
      return { unit, action, paths: paths.split(' ').filter(Boolean) };
    });
}

/**
 * What a set of changed paths does to the node's services, in rule order: the evaluation
 * provision/apply performs, for `provision --dry-run` to predict.
 */
export function affectedUnits(rules: readonly RestartRule[], changed: ReadonlySet<string>): { unit: string; action: RestartAction }[] {
  const out: { unit: string; action: RestartAction }[] = [];
  const restarted = new Set<string>();
  for (const r of rules) {
    if (restarted.has(r.unit) || !r.paths.some((p) => changed.has(p))) continue;
    if (r.action === 'restart') restarted.add(r.unit);
    out.push({ unit: r.unit, action: r.action });
  }
  return out;
}
