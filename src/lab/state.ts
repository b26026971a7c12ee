// What a lab created and started, persisted as it happens (<state dir>/state.json, replaced
// atomically), so `status`, `check` and `down` work from another process and `down` cleans
// up after an `up` that crashed half way: a namespace is recorded before it is created, a
// process right after it started.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodState } from '../check/target.ts';
import type { EspMode } from '../plan/mtu.ts';
import { LabError } from './host.ts';
import type { LabTopology } from './topology.ts';
import type { VmLayout } from './vm/layout.ts';
import type { Accel } from './vm/qemu.ts';

export interface LabProcess {
  pid: number;
  /** What /proc/<pid>/comm must say for the PID to still be ours. */
  comm: string;
  /** Namespace it runs in (its netns inode must be this namespace's). */
  ns: string;
  role: 'view' | 'strongswan' | 'capture' | 'probe' | 'vm' | 'ssh' | 'provision';
  /** The node it belongs to (views, strongSwan). */
  node?: string;
  /** e.g. "capture on the underlay", for messages. */
  what: string;
}

export type LabPodState = PodState;

export interface LabStateData {
  version: 1;
  /** Where the nodes run (absent in labs recorded before VMs: the namespace lab). */
  backend?: 'netns' | 'vm';
  prefix: string;
  configFile: string;
  /** Rendered tree the nodes were installed from (out/<node>/…). */
  outDir: string;
  espMode: EspMode;
  phase: 'starting' | 'up';
  createdAt: string;
  topology: LabTopology;
  /** Namespaces created (or about to be), in order. */
  namespaces: string[];
  processes: LabProcess[];
  /** Pod namespace → what CNI ADD returned. */
  pods: Record<string, LabPodState>;
  /** Seconds from launching every charon to every IKE/CHILD SA pair up (undefined: not converged). */
  convergedIn?: number;
  /** The VM lab's machines (backend 'vm'). */
  vm?: VmStateData;
}

/** What the VM lab created besides namespaces and processes, each recorded before it exists. */
export interface VmStateData {
  layout: VmLayout;
  image: { key: string; dir: string };
  accel: Accel;
  /** Tap devices in the wire namespace. */
  taps: string[];
  /** Copy-on-write overlays of the image, one per VM. */
  overlays: string[];
  /** Node → seconds from starting qemu to its sshd accepting the lab's key. */
  bootSeconds: Record<string, number>;
  /** Seconds the product's provisioning took for every node. */
  provisionSeconds?: number;
  /** Seconds after provisioning until every minion was Ready and CoreDNS available (built binaries only). */
  kubernetes?: { nodesReady: number; dnsReady: number };
  /** Seconds this `up` spent building the image (absent: it was cached). */
  imageBuildSeconds?: number;
}

export const STATE_FILE = 'state.json';

export function nodeDir(stateDir: string, node: string): string {
  return join(stateDir, 'nodes', node);
}

export function readState(stateDir: string): LabStateData | undefined {
  const file = join(stateDir, STATE_FILE);
  if (!existsSync(file)) return undefined;
  const data = JSON.parse(readFileSync(file, 'utf8')) as LabStateData;
  if (data.version !== 1) throw new Error(`${file}: unknown lab state version ${String(data.version)}`);
  return data;
}

export class LabState {
  constructor(
    readonly dir: string,
    readonly data: LabStateData,
  ) {}

  static create(dir: string, init: Omit<LabStateData, 'version' | 'phase' | 'createdAt' | 'namespaces' | 'processes' | 'pods'>): LabState {
    mkdirSync(dir, { recursive: true });
    const state = new LabState(dir, { version: 1, phase: 'starting', createdAt: new Date().toISOString(), namespaces: [], processes: [], pods: {}, ...init });
    state.save();
    return state;
  }

  static open(dir: string): LabState {
    const data = readState(dir);
    if (!data) throw new LabError(`no lab in ${dir} (no ${STATE_FILE}); start one with \`npm run lab -- up\``);
    return new LabState(dir, data);
  }

  save(): void {
    const file = join(this.dir, STATE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.data, null, 2) + '\n');
    renameSync(tmp, file);
  }

  addNamespaces(names: string[]): void {
    for (const n of names) if (!this.data.namespaces.includes(n)) this.data.namespaces.push(n);
    this.save();
  }

  addProcess(p: LabProcess): void {
    this.data.processes = this.data.processes.filter((x) => x.pid !== p.pid);
    this.data.processes.push(p);
    this.save();
  }

  removeProcess(pid: number): void {
    this.data.processes = this.data.processes.filter((x) => x.pid !== pid);
    this.save();
  }

  update(patch: Partial<Pick<LabStateData, 'phase' | 'convergedIn'>> & { pods?: Record<string, LabPodState> }): void {
    const { pods, ...rest } = patch;
    Object.assign(this.data, rest);
    if (pods) Object.assign(this.data.pods, pods);
    this.save();
  }

  /** Records more of the VM lab (taps and overlays before they are created). */
  updateVm(patch: Partial<VmStateData>): void {
    if (!this.data.vm) throw new Error('internal: not a VM lab');
    const { bootSeconds, ...rest } = patch;
    Object.assign(this.data.vm, rest);
    if (bootSeconds) Object.assign(this.data.vm.bootSeconds, bootSeconds);
    this.save();
  }
}
