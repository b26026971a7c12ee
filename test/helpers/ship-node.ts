// Running provision/ on this machine against scratch roots: the recorders stand in for
// systemctl and apt-get (the only things that cannot run here), and a tree snapshot tells
// whether anything below a root changed.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { runRender } from '../../src/render/pipeline.ts';
import { repoRoot } from './cluster.ts';
import { makeReleases, type TestReleases } from './ship-releases.ts';

export { repoRoot };
export const PROVISION = join(repoRoot, 'provision');
export const RECORDERS = join(repoRoot, 'test', 'helpers', 'recorders');

/** Environment that makes provision/ use the recorders writing to `recordDir`. */
export function recorderEnv(recordDir: string): Record<string, string> {
  return {
    KUBE_IPSEC_SYSTEMCTL: join(RECORDERS, 'systemctl'),
    KUBE_IPSEC_APT_GET: join(RECORDERS, 'apt-get'),
    KUBE_IPSEC_RECORD_DIR: recordDir,
  };
}

/** Lines of a recorder log ('systemctl' or 'apt'); [] before the first command. */
export function recorded(recordDir: string, which: 'systemctl' | 'apt'): string[] {
  const f = join(recordDir, `${which}.log`);
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

/** Forgets what the recorders logged so far (their unit state stays). */
export function clearRecords(recordDir: string): void {
  for (const which of ['systemctl', 'apt']) rmSync(join(recordDir, `${which}.log`), { force: true });
}

/** Root-relative path → "mode sha256" of every file below `dir` (the provisioning state dir excluded). */
export function snapshot(dir: string, exclude = ['var/lib/kube-ipsec/']): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      if (exclude.some((x) => `${rel}/`.startsWith(x))) continue;
      if (e.isDirectory()) walk(p);
      else out.set(rel, `${(lstatSync(p).mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout's report lines. */
  report: string[];
}

/** Runs a provision/ script (its own process group, so a test can kill all of it). */
export function runScript(script: string, args: string[], env: Record<string, string>, onSpawn?: (pid: number) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(PROVISION, script), ...args], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    if (child.pid && onSpawn) onSpawn(child.pid);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, report: stdout.split('\n').filter(Boolean) }));
  });
}

export interface ScratchCluster {
  dir: string;
  releases: TestReleases;
  /**
   * Renders cluster.yaml (`yaml` plus the test releases) into out-<variant>/ and returns
   * it; every variant shares one state dir, so certificates and keys stay the same.
   */
  render(variant: string, yaml: string): Promise<string>;
  /** A fresh root and recorder directory for a node, or a copy of another one's. */
  node(name: string, copyOf?: NodeDirs): NodeDirs;
  cleanup(): void;
}

export interface NodeDirs {
  root: string;
  record: string;
  env: Record<string, string>;
}

/** A temp dir holding cluster.yaml, its state dir, out-*, test releases and node roots. */
export async function scratchCluster(tag: string): Promise<ScratchCluster> {
  const dir = mkdtempSync(join(tmpdir(), `kube-ipsec-${tag}-`));
  const releases = makeReleases(join(dir, 'releases'));
  return {
    dir,
    releases,
    async render(variant, yaml) {
      const configFile = join(dir, `cluster-${variant}.yaml`);
      const outDir = join(dir, `out-${variant}`);
      writeFileSync(configFile, `${yaml}\n${releases.yaml}`);
      await runRender({ configFile, outDir, stateDir: join(dir, 'state') });
      return outDir;
    },
    node(name, copyOf) {
      const root = join(dir, 'roots', name);
      const record = join(dir, 'records', name);
      if (copyOf) {
        // Timestamps matter: install-binaries trusts a binary whose size and mtime match its stamp.
        cpSync(copyOf.root, root, { recursive: true, preserveTimestamps: true });
        cpSync(copyOf.record, record, { recursive: true });
        clearRecords(record);
      }
      mkdirSync(root, { recursive: true });
      mkdirSync(record, { recursive: true });
      return { root, record, env: recorderEnv(record) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
