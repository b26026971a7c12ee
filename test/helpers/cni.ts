// Driving the built plugin (dist/ipsec-cni) by the raw CNI protocol from tests, always
// inside a lab's node namespace so the bridge it creates never lands in the root namespace.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type ExecResult, type NetnsLab } from './netns.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const PLUGIN = join(repoRoot, 'dist', 'ipsec-cni');
export const REF_PLUGINS = '/usr/lib/cni';

function newestSource(dir: string): { path: string; mtime: number } {
  let newest = { path: dir, mtime: 0 };
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const n = e.isDirectory() ? newestSource(p) : { path: p, mtime: statSync(p).mtimeMs };
    if (n.mtime > newest.mtime) newest = n;
  }
  return newest;
}

/** Fails loudly (never skips) when the binary is missing or older than its sources. */
export function assertPluginBuilt(): string {
  let built: number;
  try {
    built = statSync(PLUGIN).mtimeMs;
  } catch {
    throw new Error(`${PLUGIN} does not exist: run \`npm run build\` (npm test does it first)`);
  }
  const src = newestSource(join(repoRoot, 'src', 'cni'));
  if (src.mtime > built) throw new Error(`${PLUGIN} is older than ${src.path}: run \`npm run build\``);
  return PLUGIN;
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS' | string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Replaces the whole CNI_* environment (for malformed-environment tests). */
  rawEnv?: Record<string, string>;
  /** Log of calls whose configuration names none (IPSEC_CNI_LOG); default /dev/null. */
  logFallback?: string;
}

export interface CniOutcome extends ExecResult {
  json: any;
}

export function cniEnv(call: CniCall): Record<string, string> {
  const base = { PATH: process.env.PATH ?? '', IPSEC_CNI_LOG: call.logFallback ?? '/dev/null' };
  if (call.rawEnv) return { ...base, ...call.rawEnv };
  const env: Record<string, string> = { ...base, CNI_COMMAND: call.command };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  env.CNI_IFNAME = call.ifname ?? 'eth0';
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  env.CNI_PATH = call.path ?? REF_PLUGINS;
  return env;
}

/** Runs `plugin` (default: ipsec-cni) inside `nodeNs` with `stdin` as the configuration. */
async function cni(nodeNs: string, call: CniCall, stdin: unknown, plugin = PLUGIN): Promise<CniOutcome> {
  const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const r = await run(['ip', 'netns', 'exec', nodeNs, plugin], { input, env: cniEnv(call), allowFail: true, timeoutMs: 30_000 });
  let json: unknown;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** Links in a namespace ('' = the root namespace), by name. */
export async function links(ns: string): Promise<string[]> {
  const argv = ns ? ['ip', '-n', ns, '-o', 'link', 'show'] : ['ip', '-o', 'link', 'show'];
  const r = await run(argv);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!);
}

export function readStore(dataDir: string, network: string): { allocations: Record<string, { containerId: string; ifname: string }> } {
  return JSON.parse(readFileSync(join(dataDir, `${network}.json`), 'utf8'));
}

/** A node namespace + temp dir for one test file; `cleanup()` in afterAll. */
export interface CniFixture {
  lab: NetnsLab;
  node: string;
  dir: string;
  /** Creates a pod namespace; returns its full name (path: lab.path(name)). */
  pod(name: string): Promise<string>;
  /** Runs the plugin (or another `plugin`) inside the node namespace. */
  cni(call: CniCall, stdin: unknown, plugin?: string): Promise<CniOutcome>;
  cleanup(): Promise<void>;
}

export async function cniFixture(tag: string): Promise<CniFixture> {
  assertPluginBuilt();
  const { netnsLab } = await import('./netns.ts');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const lab = netnsLab(tag);
  const dir = mkdtempSync(join(tmpdir(), `${lab.prefix}`));
  try {
    const node = await lab.add('node');
    // The node's own loopback, as on a real host (the plugin itself never needs it).
    await lab.exec(node, ['ip', 'link', 'set', 'lo', 'up']);
    return {
      lab,
      node,
      dir,
      pod: (name) => lab.add(name),
      cni: (call, stdin, plugin) => cni(node, { logFallback: join(dir, 'fallback.log'), ...call }, stdin, plugin),
      async cleanup() {
        await lab.cleanup();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** IPv4 addresses ("a.b.c.d/len") on `dev` inside namespace `ns`; [] when the device is absent. */
export async function ipv4Addresses(ns: string, dev = 'eth0'): Promise<string[]> {
  const r = await run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', dev], { allowFail: true });
  if (r.code !== 0) return [];
  const info = (JSON.parse(r.stdout)[0]?.addr_info ?? []) as { family: string; local: string; prefixlen: number }[];
  return info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}
