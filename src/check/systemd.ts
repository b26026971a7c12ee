// What systemd on a node (a VM, a real machine) says about the node's units: their state,
// ordering and timestamps (`systemctl show`), parsed into data; what the node's provisioning
// installed (node.env UNITS); and strongSwan driven as its unit. Pure parsers plus one ssh
// round trip per question.
import { readNodeFile, type ClusterBackend, type ClusterExec } from './target.ts';
import { PATHS, UNITS } from '../plan/paths.ts';
import { waitFor, type RunOptions, type RunResult } from '../run.ts';

export type UnitProps = Record<string, string>;

/** `systemctl show` of several units: blocks separated by blank lines, in the order asked. */
export function parseShow(text: string): UnitProps[] {
  const blocks: UnitProps[] = [];
  let current: UnitProps | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) {
      if (current) blocks.push(current);
      current = undefined;
      continue;
    }
    const i = line.indexOf('=');
    if (i <= 0) continue;
    (current ??= {})[line.slice(0, i)] = line.slice(i + 1);
  }
  if (current) blocks.push(current);
  return blocks;
}

/** A space-separated unit list property (After=, Requires=…). */
export const unitList = (value: string | undefined): string[] => (value ?? '').split(/\s+/).filter(Boolean);

/** The program of `ExecStart={ path=/usr/local/bin/kubelet ; argv[]=… }` (first command). */
export function execPath(value: string | undefined): string | undefined {
  return /path=(\S+)/.exec(value ?? '')?.[1];
}

const SHOWN = [
  'Id',
  'LoadState',
  'ActiveState',
  'SubState',
  'UnitFileState',
  'FragmentPath',
  'MainPID',
  'ExecStart',
  'After',
  'Requires',
  'Wants',
  'ActiveEnterTimestamp',
  'ActiveEnterTimestampMonotonic',
  'InactiveExitTimestampMonotonic',
];

/** The units' properties, by unit name. */
export async function showUnits(lab: ClusterExec, node: string, units: string[], props = SHOWN): Promise<Map<string, UnitProps>> {
  const r = await lab.runner.run(lab.backend.onNode(node, ['systemctl', 'show', '-p', props.join(','), '--', ...units]), { timeoutMs: 60_000 });
  const blocks = parseShow(r.stdout);
  if (blocks.length !== units.length) throw new Error(`systemctl show on ${node} answered ${blocks.length} units for ${units.length}`);
  return new Map(units.map((u, i) => [u, blocks[i]!]));
}

/** A value of node.env (NAME=value or NAME="value"). */
export function envValue(text: string, name: string): string | undefined {
  let value: string | undefined;
  for (const line of text.split('\n')) if (line.startsWith(`${name}=`)) value = line.slice(name.length + 1);
  return value?.replace(/^"(.*)"$/, '$1');
}

/** The node's units in bring-up order, as its installed node.env lists them. */
export async function nodeUnits(lab: ClusterExec, node: string): Promise<string[]> {
  const env = await readNodeFile(lab, node, PATHS.nodeEnv);
  if (env === undefined) throw new Error(`${node} has no ${PATHS.nodeEnv}: it was not provisioned`);
  return (envValue(env, 'UNITS') ?? '').split(/\s+/).filter(Boolean);
}

/** Monotonic microseconds of a timestamp property (0: never). */
export const micros = (p: UnitProps | undefined, key: string): number => Number(p?.[key] ?? 0);

/** Runs argv on a node (through whatever reaches it). */
export type NodeRun = (node: string, argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/**
 * strongSwan as the node's systemd unit runs it (VMs, real nodes): started and stopped with
 * systemctl; started means charon has loaded its connections (`ipsec statusall`).
 */
export function strongswanUnit(run: NodeRun): Pick<ClusterBackend, 'startStrongswan' | 'stopStrongswan' | 'strongswanState'> {
  const unit = UNITS.strongswan;
  return {
    async startStrongswan(node) {
      await run(node, ['systemctl', 'start', unit], { timeoutMs: 60_000 });
      const up = await waitFor(
        async () => /^Connections:/m.test((await run(node, ['ipsec', 'statusall'], { allowFail: true, timeoutMs: 20_000 })).stdout),
        30_000,
        250,
      );
      if (!up) throw new Error(`strongSwan on ${node} started but charon has no connections after 30 s (journalctl -u ${unit} on ${node})`);
    },
    async stopStrongswan(node) {
      await run(node, ['systemctl', 'stop', unit], { timeoutMs: 60_000 });
    },
    async strongswanState(node) {
      const r = await run(node, ['systemctl', 'show', '-p', 'ActiveState,MainPID', unit], { allowFail: true, timeoutMs: 20_000 });
      const props = parseShow(r.stdout)[0] ?? {};
      if (r.code !== 0) return { pids: [], detail: `unknown (${r.stderr.trim() || 'ssh failed'})` };
      const pid = Number(props.MainPID);
      return { pids: props.ActiveState === 'active' && pid > 0 ? [pid] : [], detail: `${props.ActiveState ?? '?'} (unit, pid ${props.MainPID ?? '?'})` };
    },
  };
}
