// A lab for one e2e test file: its own prefix and temp dir, the lab's own `down` in
// afterAll, and an audit of what is left afterwards — namespaces, links in the root
// namespace, processes the lab started, mounts of its files anywhere. If the worker dies
// before afterAll, a synchronous exit hook kills the recorded processes (after the same
// ownership checks `down` makes) and deletes the prefixed namespaces.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { down, mountsUnder, type DownReport } from '../../src/lab/down.ts';
import { viewOf } from '../../src/lab/lab.ts';
import { prefixedNamespaces } from '../../src/lab/network.ts';
import { isOurs, netnsInode, processNetnsInode } from '../../src/lab/procs.ts';
import { readState, type LabProcess } from '../../src/lab/state.ts';
import { alive, strongswanProcesses } from '../../src/lab/strongswan.ts';
import { up, type UpOptions } from '../../src/lab/up.ts';
import { assertPluginBuilt } from '../helpers/cni.ts';

export interface Leftovers {
  namespaces: string[];
  rootLinks: string[];
  /** PIDs recorded before down that still run. */
  processes: number[];
  /** PIDs still in one of the lab's network namespaces (by inode: the names are gone). */
  inLabNetns: number[];
  mounts: string[];
  stateDir: boolean;
}

export interface E2eLab {
  prefix: string;
  dir: string;
  stateDir: string;
  configFile: string;
  /** Writes the cluster.yaml this lab is brought up from. */
  writeConfig(yaml: string): string;
  up(extra?: Partial<UpOptions>): ReturnType<typeof up>;
  /** Every PID the lab recorded or has in pid files now (to check they are gone after down). */
  pids(): LabProcess[];
  /** What to audit after down: recorded PIDs and the namespaces' inodes, taken before it. */
  snapshot(): Snapshot;
  down(): Promise<DownReport>;
  leftovers(before: Snapshot): Leftovers;
  cleanup(): Promise<void>;
}

interface Snapshot {
  pids: LabProcess[];
  netnsInodes: number[];
}

const live = new Set<E2eLab>();

function inNetnsInodes(inodes: number[]): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => alive(pid) && inodes.includes(processNetnsInode(pid) ?? -1));
}
let hooked = false;

export function e2eLab(tag: string): E2eLab {
  if (!/^[a-z]{1,4}$/.test(tag)) throw new Error(`e2e lab tag '${tag}' must be 1-4 letters`);
  const prefix = `${tag}${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `kube-ipsec-${prefix}-`));
  const stateDir = join(dir, 'lab');
  const configFile = join(dir, 'cluster.yaml');
  const lab: E2eLab = {
    prefix,
    dir,
    stateDir,
    configFile,
    writeConfig(yaml) {
      writeFileSync(configFile, yaml);
      return configFile;
    },
    up: (extra = {}) => up({ configFile, stateDir, prefix, plugin: assertPluginBuilt(), ...extra }),
    pids() {
      const s = readState(stateDir);
      if (!s) return [];
      const fromFiles = s.topology.nodes.flatMap((n) =>
        strongswanProcesses(viewOf(stateDir, n)).map((p): LabProcess => ({ ...p, ns: n.ns, role: 'strongswan', what: p.comm })),
      );
      return [...s.processes, ...fromFiles];
    },
    snapshot() {
      return {
        pids: lab.pids(),
        netnsInodes: prefixedNamespaces(prefix)
          .map((ns) => netnsInode(ns)!)
          .filter(Boolean),
      };
    },
    down: () => down(stateDir),
    leftovers({ pids, netnsInodes }) {
      const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
      return {
        namespaces: prefixedNamespaces(prefix),
        rootLinks: links.split('\n').filter((l) => l.includes(` ${prefix}-`)),
        processes: pids.filter((p) => alive(p.pid)).map((p) => p.pid),
        inLabNetns: inNetnsInodes(netnsInodes),
        mounts: mountsUnder(dir),
        stateDir: readState(stateDir) !== undefined,
      };
    },
    async cleanup() {
      await down(stateDir).catch(() => undefined);
      sweepSync(lab);
      rmSync(dir, { recursive: true, force: true });
      live.delete(lab);
    },
  };
  live.add(lab);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const l of live) sweepSync(l);
    });
  }
  return lab;
}

function sweepSync(lab: E2eLab): void {
  for (const p of lab.pids()) {
    if (isOurs(p)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const ns of prefixedNamespaces(lab.prefix)) spawnSync('ip', ['netns', 'del', ns]);
}

export const NOTHING_LEFT: Leftovers = { namespaces: [], rootLinks: [], processes: [], inLabNetns: [], mounts: [], stateDir: false };
