// A provisioned cluster as the checks see it (`kube-ipsec check`): its nodes from
// cluster.yaml, reached as `kube-ipsec provision` reaches them (nodes[].ssh, else `vagrant
// ssh-config`) with the same host key policy, over OpenSSH master connections; test pods made
// on every node that runs pods by its installed plugin; and, when the check is done or
// interrupted, the cluster left as it was found: pods deleted through the plugin, IPAM stores
// as they were, what the run started on the nodes stopped, strongSwan running where it ran.
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { loadClusterFile } from '../config/load.ts';
import { kubeIpsecArgv } from '../package-root.ts';
import { planCluster, type Plan } from '../plan/plan.ts';
import { UNITS, PATHS } from '../plan/paths.ts';
import { processRunner, interruptible, type InterruptibleRunner, type Runner } from '../run.ts';
import { connectSsh } from '../ship/ssh.ts';
import { resolveTarget, vagrantEnv, type NodeTarget } from '../ship/targets.ts';
import { keyType } from '../ship/known-hosts.ts';
import { BOOT_CAPTURE_DIR } from './boot-capture.ts';
import { EARLY_PROBE_UNIT, PROBE_UNIT } from './checks/reboot.ts';
import { hostKeyAlgorithms, perNodeSessions, pinnedKnownHostsLine, type OpenSshNode } from './openssh.ts';
import { createPods } from './pods.ts';
import { REMOTE_DIR } from './remote.ts';
import { REMOTE_LIFETIME_S, sshBackend, type SshBackend } from './ssh-backend.ts';
import { nodesWithPods, saLifetimes, type CheckNode, type CheckPod, type CheckTarget, type CheckTopology, type PodState } from './target.ts';
import { leftoversArgv, removePods, restoreStore, snapshotStore, type StoreOutcome, type StoreSnapshot } from './test-pods.ts';

/** Begins every test pod's namespace and container id of one run: `kic` and 4 random base-36 digits. */
export function runPrefix(): string {
  return `kic${(randomBytes(4).readUInt32BE(0) % 36 ** 4).toString(36).padStart(4, '0')}`;
}

/** The cluster's nodes as the checks address them, with `podsPerNode` test pods on each node that runs pods (pure). */
export function clusterTopology(plan: Plan, prefix: string, podsPerNode: number): CheckTopology {
  const nodes = plan.nodes.map((n): CheckNode => {
    const pods = n.runsPods
      ? Array.from({ length: podsPerNode }, (_, k): CheckPod => {
          const name = `${n.name}-pod${k + 1}`;
          // The container id says who made it, should anyone find it in the plugin's store or log.
          return { node: n.name, name, ns: `${prefix}-${name}`, containerId: `kube-ipsec-check-${prefix}-${name}` };
        })
      : [];
    return { name: n.name, role: n.role, ns: n.name, ip: n.ip, podSubnet: n.podSubnet, gateway: n.gateway, selectors: n.selectors, pods };
  });
  return {
    prefix,
    podCidr: plan.network.podCidr,
    nodeCidr: plan.network.nodeCidr,
    serviceCidr: plan.network.serviceCidr,
    lifetimes: saLifetimes(plan.ipsec),
    underlayMtu: plan.network.underlayMtu,
    nodes,
  };
}

export interface ClusterOptions {
  configFile: string;
  outDir: string;
  stateDir: string;
  /** known_hosts files, in order (new keys go to the first with acceptNewHostKeys). */
  knownHosts: string[];
  acceptNewHostKeys: boolean;
  podsPerNode: number;
  /** Whether the reprovision check will run: it needs a copy of cluster.yaml to edit. */
  reprovision: boolean;
  log: (line: string) => void;
  runner?: Runner;
}

export interface NodeConnection {
  name: string;
  /** user@host:port */
  ssh: string;
  /** Where the target came from: cluster.yaml or `vagrant ssh-config`. */
  source: NodeTarget['source'];
  /** How the host key was accepted (pinned in cluster.yaml, a known_hosts line, recorded as new). */
  hostKey: string;
  underlay: string;
  systemd: boolean;
}

export interface Cleanup {
  /** Test pods deleted through the plugin, of those made. */
  podsDeleted: number;
  pods: number;
  stores: StoreOutcome[];
  problems: string[];
  /** What this run restored because it was interrupted (strongSwan started again, probe units removed). */
  restored: string[];
}

export interface ClusterSession {
  target: CheckTarget;
  backend: SshBackend;
  nodes: NodeConnection[];
  /** Makes the test pods (after the stores were read). */
  makePods(): Promise<void>;
  /**
   * Deletes the test pods, puts the stores back, ends what this run left on the nodes and
   * closes the connections. `interrupted`: the check did not finish — whatever it may have
   * left changed (strongSwan stopped, probe units installed) is also put back.
   */
  close(interrupted?: boolean): Promise<Cleanup>;
  /** Refuses every new command of the checks (an interrupt); the cleanup still runs. */
  interrupt(why: string): void;
}

/** Resolves, verifies and connects every node; nothing is created on them yet. */
export async function openCluster(o: ClusterOptions): Promise<ClusterSession> {
  const plan = planCluster(loadClusterFile(o.configFile));
  const prefix = runPrefix();
  const topology = clusterTopology(plan, prefix, o.podsPerNode);
  const base = o.runner ?? processRunner;
  const local = mkdtempSync(join(tmpdir(), `kube-ipsec-check-${prefix}-`));
  let backend: SshBackend | undefined;
  try {
    // As `kube-ipsec provision` does: each node's target, its host key by the same policy
    // (over ssh2, which also proves the login works), then OpenSSH pinned to that key.
    const configDir = dirname(o.configFile);
    const ctx = { configDir, vagrantEnv: vagrantEnv(o) };
    const verified = await Promise.all(
      plan.nodes.map(async (n) => {
        const target = await resolveTarget(n, ctx);
        const t = await connectSsh(n.name, target, {
          host: target.host,
          port: target.port,
          ...(target.hostKey !== undefined && { pinned: target.hostKey }),
          knownHosts: o.knownHosts,
          acceptNew: o.acceptNewHostKeys,
        });
        t.close();
        const knownHosts = join(local, `known_hosts-${n.name}`);
        writeFileSync(knownHosts, pinnedKnownHostsLine(n.name, t.hostKey), { mode: 0o600 });
        const ssh: OpenSshNode = {
          name: n.name,
          host: target.host,
          port: target.port,
          user: target.user,
          identityFiles: target.identityFiles,
          knownHosts,
          hostKeyAlgorithms: hostKeyAlgorithms(keyType(t.hostKey)),
          controlPath: join(local, `${n.name}.ctl`),
        };
        return { target, ssh, accepted: t.hostKeyAccepted };
      }),
    );
    const sessions = perNodeSessions(base);
    const runner = interruptible(sessions);
    const runDir = `${REMOTE_DIR}/${prefix}`;
    backend = sshBackend({
      runner,
      control: sessions,
      topology,
      ssh: new Map(verified.map((v) => [v.ssh.name, v.ssh])),
      runDir,
      nodeEncryption: plan.ipsec.nodeEncryption,
    });
    await backend.connect();
    return session(o, plan, topology, backend, runner, sessions, runDir, local, verified);
  } catch (err) {
    await backend?.close();
    rmSync(local, { recursive: true, force: true });
    throw err;
  }
}

function session(
  o: ClusterOptions,
  plan: Plan,
  topology: CheckTopology,
  backend: SshBackend,
  runner: InterruptibleRunner,
  control: Runner,
  runDir: string,
  local: string,
  verified: { target: NodeTarget; ssh: OpenSshNode; accepted: string }[],
): ClusterSession {
  let pods: Record<string, PodState> = {};
  const stores: StoreSnapshot[] = [];
  let strongswanBefore = new Map<string, boolean>();
  const copy = o.reprovision ? reprovisionCopy(o.configFile, topology.prefix) : undefined;

  const target: CheckTarget = {
    label: `cluster ${plan.cluster.name}`,
    runner,
    backend,
    topology,
    espMode: plan.ipsec.espMode,
    get pods() {
      return pods;
    },
    recordPods(made) {
      pods = { ...pods, ...made };
    },
    ...(copy && {
      provisioning: {
        configFile: copy,
        provision: (extra) => provisionAgain(o, copy, extra),
      },
    }),
  };
  // The cleanup's own view: the same nodes, through a runner an interrupt does not stop.
  const cleanupExec = { runner: control, backend };
  const podNodes = nodesWithPods(topology).map((n) => n.name);
  let closing: Promise<Cleanup> | undefined;

  const close = async (interrupted: boolean): Promise<Cleanup> => {
    const c: Cleanup = { podsDeleted: 0, pods: 0, stores: [], problems: [], restored: [] };
    try {
      // After a reboot the master connection may be gone: one more try, briefly.
      await backend.connect(undefined, 30_000).catch((err: Error) => c.problems.push(err.message));
      const made = topology.nodes.flatMap((n) => n.pods);
      c.pods = made.length;
      if (stores.length || Object.keys(pods).length) {
        const removal = await removePods(cleanupExec, made);
        c.podsDeleted = removal.deleted;
        c.problems.push(...removal.problems);
        c.stores = await Promise.all(
          stores.map((s) =>
            restoreStore(cleanupExec, s).catch((err: Error) => ({
              node: s.node,
              path: s.path,
              asFound: false,
              detail: `could not be read back: ${err.message}`,
            })),
          ),
        );
      }
      if (interrupted) c.restored.push(...(await putBack(cleanupExec.runner, backend, topology, strongswanBefore)));
      await Promise.all(
        topology.nodes.map(async (n) => {
          const leftovers = leftoversArgv({
            runDir,
            lifetimeS: REMOTE_LIFETIME_S,
            unitDir: PATHS.systemdDir,
            units: `kube-ipsec-check-${topology.prefix}-*.service`,
            bootDir: `${BOOT_CAPTURE_DIR}/${topology.prefix}`,
          });
          const r = await cleanupExec.runner.run(backend.onNode(n.name, leftovers), { allowFail: true, timeoutMs: 60_000 });
          if (r.code !== 0) c.problems.push(`${n.name}: removing ${runDir}: ${(r.stderr || r.stdout).trim()}`);
        }),
      );
    } finally {
      await backend.close();
      if (copy) rmSync(copy, { force: true });
      rmSync(local, { recursive: true, force: true });
    }
    return c;
  };

  return {
    target,
    backend,
    nodes: verified.map((v) => ({
      name: v.ssh.name,
      ssh: `${v.ssh.user}@${v.ssh.host}:${v.ssh.port}`,
      source: v.target.source,
      hostKey: v.accepted,
      underlay: backend.facts(v.ssh.name).underlay,
      systemd: backend.facts(v.ssh.name).systemd,
    })),
    async makePods() {
      strongswanBefore = new Map(
        await Promise.all(
          topology.nodes.map(async (n) => [n.name, backend.systemd ? (await backend.strongswanState(n.name)).pids.length > 0 : false] as const),
        ),
      );
      stores.push(...(await Promise.all(podNodes.map((n) => snapshotStore(target, n)))));
      pods = await createPods(target);
    },
    close: (interrupted = false) => (closing ??= close(interrupted)),
    interrupt: (why) => runner.interrupt(why),
  };
}

/**
 * A copy of cluster.yaml next to it (relative paths in it still resolve the same) for the
 * reprovision check to edit: the user's file is never written, not even when the check is
 * killed halfway.
 */
function reprovisionCopy(configFile: string, prefix: string): string {
  const copy = join(dirname(configFile), `.${basename(configFile)}.${prefix}`);
  copyFileSync(configFile, copy);
  chmodSync(copy, statSync(configFile).mode & 0o777);
  return copy;
}

/** `kube-ipsec provision` with the check's copy of cluster.yaml, as a user would run it; resolves with its output. */
function provisionAgain(o: ClusterOptions, config: string, extra: string[]): Promise<string> {
  const argv = [
    ...kubeIpsecArgv(),
    'provision',
    '--config',
    config,
    '--out',
    o.outDir,
    '--state',
    o.stateDir,
    ...o.knownHosts.flatMap((f) => ['--known-hosts', f]),
    ...(o.acceptNewHostKeys ? ['--accept-new-host-keys'] : []),
    ...extra,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const l of d.toString().split('\n')) if (l.trim()) o.log(`provision: ${l}`);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`kube-ipsec provision ${extra.join(' ')} failed (exit ${code}): ${(err || out).trim().split('\n').slice(-4).join(' | ')}`)),
    );
  });
}

/** After an interrupted check: strongSwan started again where it ran before, the reboot check's probe units removed. */
async function putBack(runner: Runner, backend: SshBackend, t: CheckTopology, strongswanBefore: Map<string, boolean>): Promise<string[]> {
  const done: string[] = [];
  await Promise.all(
    t.nodes.map(async (n) => {
      if (!backend.facts(n.name).systemd) return;
      const units = [PROBE_UNIT, EARLY_PROBE_UNIT].map((u) => `${PATHS.systemdDir}/${u}`);
      const probes = await runner.run(
        backend.onNode(n.name, [
          'sh',
          '-c',
          `removed=; for f; do [ -e "$f" ] || continue; systemctl disable --now --quiet "$(basename "$f")"; rm -f "$f"; removed=1; done; [ -z "$removed" ] || { systemctl daemon-reload; echo removed; }`,
          'probes',
          ...units,
        ]),
        { allowFail: true, timeoutMs: 60_000 },
      );
      if (probes.stdout.includes('removed')) done.push(`${n.name}: the reboot check's probe units removed`);
      if (strongswanBefore.get(n.name)) {
        const unit = UNITS.strongswan;
        const r = await runner.run(
          backend.onNode(n.name, ['sh', '-c', `systemctl is-active --quiet ${unit} || { systemctl start ${unit} && echo started; }`]),
          { allowFail: true, timeoutMs: 60_000 },
        );
        if (r.code !== 0) done.push(`${n.name}: strongSwan could not be started again: ${r.stderr.trim()}`);
        else if (r.stdout.includes('started')) done.push(`${n.name}: strongSwan started again (the check had stopped it)`);
      }
    }),
  );
  return done;
}
