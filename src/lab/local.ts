// Programs the lab runs in the background in its namespaces on this host — captures (tcpdump)
// and probes (listeners, flows) — each recorded in the lab's state right after it starts and
// removed when stopped, so `down` stops whatever a crashed check left behind.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Background, Capture } from '../check/target.ts';
import type { Runner } from '../run.ts';
import { inNetns } from './network.ts';
import { isOurs } from './procs.ts';
import type { LabProcess, LabState } from './state.ts';
import { alive } from './strongswan.ts';

interface Started {
  record: LabProcess;
  stop(): Promise<string>;
}

/**
 * Starts `argv` in network namespace `ns`; resolves once `ready` matched its stderr (or at
 * once). stop() sends SIGTERM (SIGKILL after 5 s), unrecords it, and gives back its stdout.
 */
async function startRecorded(state: LabState, ns: string, argv: readonly string[], role: LabProcess['role'], what: string, ready?: RegExp): Promise<Started> {
  const full = inNetns(ns, argv);
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const record: LabProcess = { pid: child.pid!, comm: basename(argv[0]!).slice(0, 15), ns, role, what };
  state.addProcess(record);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (ready && !ready.test(stderr)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill('SIGKILL');
      state.removeProcess(record.pid);
      throw new Error(`${what} did not start: ${stderr.trim() || `exit ${child.exitCode}`}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  let stopped: Promise<string> | undefined;
  const stop = async () => {
    if (child.exitCode === null && isOurs(record)) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (alive(record.pid) && isOurs(record)) child.kill('SIGKILL');
    state.removeProcess(record.pid);
    return stdout;
  };
  return { record, stop: () => (stopped ??= stop()) };
}

/** A background program in a namespace of this host (the lab's pods, nodes or upstream). */
export async function localBackground(state: LabState, ns: string, argv: readonly string[], what: string): Promise<Background> {
  const started = await startRecorded(state, ns, argv, 'probe', what);
  return { stop: started.stop };
}

/** tcpdump on `dev` in namespace `ns` of this host, writing to the lab's captures directory. */
export async function localCapture(state: LabState, runner: Runner, ns: string, dev: string, name: string, filter: string[] = []): Promise<Capture> {
  const dir = join(state.dir, 'captures');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.pcap`);
  // --immediate-mode: without it packets of the last second sit in the ring and are lost on SIGTERM.
  const argv = ['tcpdump', '--immediate-mode', '-nn', '-U', '-Z', 'root', '-i', dev, '-w', file, ...filter];
  const started = await startRecorded(state, ns, argv, 'capture', `capture ${name} on ${dev} in ${ns}`, /listening on/);
  let stopped: Promise<string[]> | undefined;
  const stop = async (): Promise<string[]> => {
    // Let the last replies of the traffic in flight land before stopping.
    await new Promise((r) => setTimeout(r, 200));
    await started.stop();
    const r = await runner.run(inNetns(ns, ['tcpdump', '-nn', '-t', '-r', file]), { allowFail: true, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`reading ${file}: ${r.stderr.trim()}`);
    return r.stdout.split('\n').filter(Boolean);
  };
  return { file, stop: () => (stopped ??= stop()) };
}
