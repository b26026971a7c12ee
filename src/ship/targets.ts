// Where each node is reached: nodes[].ssh in cluster.yaml when present (host defaulting to
// the node's address, port 22, user root), otherwise what `vagrant ssh-config <node>` says
// about the Vagrant VM of that name. Vagrant's own "StrictHostKeyChecking no" is not
// inherited: host keys are verified the same way for every node.
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { PlannedNode } from '../plan/plan.ts';
import type { SshTarget } from './ssh.ts';
import { ShipError } from './transport.ts';

export interface NodeTarget extends SshTarget {
  node: string;
  /** cluster.yaml nodes[].ssh.hostKey */
  hostKey?: string;
  source: 'cluster.yaml' | 'vagrant ssh-config';
}

/** Runs a command, resolving with its stdout (rejecting with its stderr). */
export type RunCommand = (file: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) => Promise<string>;

const runCommand: RunCommand = (file, args, options) =>
  new Promise((res, rej) =>
    execFile(file, args, { ...options, encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? rej(new Error(String(stderr).trim() || err.message)) : res(String(stdout)),
    ),
  );

export interface TargetContext {
  /** Directory of cluster.yaml: relative key paths start there, and vagrant runs there. */
  configDir: string;
  /** Environment for vagrant (the Vagrantfile reads KUBE_IPSEC_CONFIG / KUBE_IPSEC_OUT). */
  vagrantEnv: NodeJS.ProcessEnv;
  run?: RunCommand;
}

/**
 * The environment `vagrant ssh-config` runs in: the cluster's own paths, as the Vagrantfile
 * reads them (KUBE_IPSEC_CONFIG, KUBE_IPSEC_OUT, KUBE_IPSEC_STATE), so it describes the same
 * cluster as the command that asks.
 */
export function vagrantEnv(paths: { configFile: string; outDir: string; stateDir: string }, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, KUBE_IPSEC_CONFIG: paths.configFile, KUBE_IPSEC_OUT: paths.outDir, KUBE_IPSEC_STATE: paths.stateDir };
}

export async function resolveTarget(node: PlannedNode, ctx: TargetContext): Promise<NodeTarget> {
  if (node.ssh) {
    return {
      node: node.name,
      host: node.ssh.host ?? node.ip,
      port: node.ssh.port ?? 22,
      user: node.ssh.user ?? 'root',
      identityFiles: node.ssh.privateKey ? [expandPath(node.ssh.privateKey, ctx.configDir)] : [],
      ...(node.ssh.hostKey !== undefined && { hostKey: node.ssh.hostKey }),
      source: 'cluster.yaml',
    };
  }
  let text: string;
  try {
    text = await (ctx.run ?? runCommand)('vagrant', ['ssh-config', node.name], { cwd: ctx.configDir, env: ctx.vagrantEnv });
  } catch (err) {
    throw new ShipError(
      `${node.name}: no nodes[].ssh in cluster.yaml, and \`vagrant ssh-config ${node.name}\` failed: ${(err as Error).message.split('\n')[0]}\n` +
        `    fix: start the VM (vagrant up ${node.name}) or describe how to reach the node in nodes[].ssh (host, user, privateKey, hostKey)`,
    );
  }
  const hosts = parseSshConfig(text);
  const h = hosts.get(node.name) ?? [...hosts.values()][0];
  if (!h?.hostname) throw new ShipError(`${node.name}: \`vagrant ssh-config ${node.name}\` printed no HostName`);
  return {
    node: node.name,
    host: h.hostname,
    port: h.port ?? 22,
    user: h.user ?? 'vagrant',
    identityFiles: h.identityFiles.map((f) => expandPath(f, ctx.configDir)),
    source: 'vagrant ssh-config',
  };
}

export interface SshConfigHost {
  hostname?: string;
  port?: number;
  user?: string;
  identityFiles: string[];
}

/** The `Host` blocks of ssh_config text (as `vagrant ssh-config` prints them). */
export function parseSshConfig(text: string): Map<string, SshConfigHost> {
  const hosts = new Map<string, SshConfigHost>();
  let current: SshConfigHost | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s*=?\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    const value = unquote(m[2]!.trim());
    if (key === 'host') {
      current = { identityFiles: [] };
      hosts.set(value, current);
    } else if (current) {
      if (key === 'hostname') current.hostname = value;
      else if (key === 'port') current.port = Number(value);
      else if (key === 'user') current.user = value;
      else if (key === 'identityfile') current.identityFiles.push(value);
    }
  }
  return hosts;
}

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

function expandPath(p: string, base: string): string {
  if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(base, p);
}
