// Which unit restarts (or reloads) when which installed file changes. provision/apply reads
// the result from the node's tree (/etc/kube-ipsec/restart.tsv) and only compares paths, so
// every decision about services is made here, once, where the plan is known.
//
// Most of the map is derived rather than listed: a unit depends on its unit file, its
// drop-ins, and every file of the node that file names, transitively (kubelet.service names
// /var/lib/kubelet/config.yaml, which names the CA and the serving certificate). A flag
// added to a unit therefore moves its file into the map by itself. Only units whose
// configuration is found by convention rather than by path get explicit rules: strongSwan
// (reads /etc/ipsec.*), systemd-sysctl and systemd-modules-load (read their .d directories).
import { PATHS, UNITS } from '../plan/paths.ts';
import type { Plan, PlannedNode } from '../plan/plan.ts';
import { artifactMembers, nodeUnits } from './artifacts.ts';
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
  const known = new Set([...byPath.keys(), ...artifactMembers(plan, node).map((m) => m.dest)]);
  const closure = (roots: string[]): string[] => {
    const seen = new Set<string>();
    const visit = (path: string) => {
      if (seen.has(path) || !known.has(path)) return;
      seen.add(path);
      for (const ref of byPath.get(path)?.content.match(ABSOLUTE_PATH) ?? []) visit(ref);
    };
    roots.forEach(visit);
    return [...seen].sort();
  };
  const unitFiles = (unit: string) =>
    [...byPath.keys()].filter((p) => p === `${PATHS.systemdDir}/${unit}` || p.startsWith(`${PATHS.systemdDir}/${unit}.d/`));

  const rules: RestartRule[] = [
    { unit: UNITS.modulesLoad, action: 'restart', paths: [PATHS.modulesLoad] },
    { unit: UNITS.sysctl, action: 'restart', paths: [PATHS.sysctl] },
  ];
  for (const unit of nodeUnits(plan, node)) {
    const restartOn = closure(unitFiles(unit));
    if (unit === UNITS.strongswan) {
      // charon's own settings need a new charon; the mesh (conns, secrets, certificates)
      // is re-read by a reload, which leaves the other tunnels up (the drop-in's ExecReload).
      rules.push({ unit, action: 'restart', paths: [...restartOn, PATHS.strongswanConf].sort() });
      const mesh = [...byPath.keys()].filter((p) => p === PATHS.ipsecConf || p === PATHS.ipsecSecrets || p.startsWith('/etc/ipsec.d/'));
      rules.push({ unit, action: 'reload', paths: mesh.sort() });
      continue;
    }
    rules.push({ unit, action: 'restart', paths: restartOn });
  }
  return rules.map((r) => ({ ...r, paths: r.paths.filter((p) => known.has(p)) })).filter((r) => r.paths.length > 0);
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
