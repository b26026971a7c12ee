// Shipping benchmark against the sshd lab (one real sshd per node namespace, the CLI in a
// host namespace, scratch roots): a full provision of the default 4-node cluster from empty
// roots, and the no-op re-provision of one minion (target < 2 s), each as the CLI's own
// measurement (render + ssh + node work) and as wall time of the whole (built) command. Then
// the no-op as users type it, `npm run provision -- --node minion2` (target: whole command
// ≤ 1 s), timed with hyperfine against the same built command without npm, the command
// transpiled at start by tsx (how it ran before it was built), `node -e 0` (the floor of any
// Node.js command) and OpenSSH running `true` on the node (the floor of one remote command).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertPluginBuilt } from '../test/helpers/cni.ts';
import { makeReleases } from '../test/helpers/ship-releases.ts';
import { repoRoot } from '../test/helpers/cluster.ts';
import { sshdLab, type SshdLab } from '../test/helpers/sshd-lab.ts';
import { formatTimes, hyperfine } from './lib/hyperfine.ts';

const NOOP_TARGET_S = 2;
/** The no-op as a whole command, `npm run provision -- --node minion2` (issue 11). */
const NOOP_COMMAND_TARGET_S = 1;
const NODES = [
  { name: 'master', ip: '192.168.10.10' },
  { name: 'minion1', ip: '192.168.10.21' },
  { name: 'minion2', ip: '192.168.10.22' },
  { name: 'minion3', ip: '192.168.10.23' },
];

interface Timing {
  wall: number;
  /** What the CLI reports: "provisioned: … in X s". */
  own: number;
  /** The node's own line in the summary (ssh session: probe, upload, provision/). */
  node: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const provisionArgs = (lab: SshdLab, config: string) => [
  '--config',
  config,
  '--out',
  join(lab.dir, 'out'),
  '--known-hosts',
  lab.knownHosts,
  '--root',
  lab.rootOption,
];

async function provision(lab: SshdLab, config: string, nodeLine: string, args: string[]): Promise<Timing> {
  const t = performance.now();
  const r = await lab.cli(['provision', ...provisionArgs(lab, config), ...args], 'built');
  const wall = (performance.now() - t) / 1000;
  if (r.code !== 0) throw new Error(`provision ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  const own = Number(/^provisioned: .* in ([0-9.]+) s$/m.exec(r.stdout)?.[1]);
  const node = Number(new RegExp(`^  ${nodeLine}\\s.*\\s([0-9.]+) s(, sent .*)?$`, 'm').exec(r.stdout)?.[1]);
  return { wall, own, node };
}

function freshRoots(lab: SshdLab): void {
  for (const n of lab.nodes.values()) {
    for (const d of [n.root, n.record]) {
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d, { recursive: true });
    }
  }
}

function row(label: string, ts: Timing[]): string {
  const f = (xs: number[]) => `${median(xs).toFixed(2)} s`;
  return `  ${label.padEnd(38)} own ${f(ts.map((t) => t.own))}   whole command ${f(ts.map((t) => t.wall))}   (median of ${ts.length})`;
}

export async function run(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench ship: run as root (the lab uses network namespaces)');
    return 2;
  }
  assertPluginBuilt();
  const quick = argv.includes('--quick');
  const lab = await sshdLab('bship', NODES);
  try {
    const releases = makeReleases(join(lab.dir, 'releases'));
    const config = join(lab.dir, 'cluster.yaml');
    const nodes = NODES.map((n, i) => `  - { name: ${n.name}, ${i ? '' : 'role: master, '}ip: ${n.ip}, ssh: { privateKey: ${lab.clientKey} } }`);
    writeFileSync(config, `nodes:\n${nodes.join('\n')}\n${releases.yaml}`);

    const full: Timing[] = [];
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      freshRoots(lab);
      full.push(await provision(lab, config, 'minion1', []));
    }
    const noop: Timing[] = [];
    for (let i = 0; i < (quick ? 3 : 7); i++) noop.push(await provision(lab, config, 'minion2', ['--node', 'minion2']));

    const ssh: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const r = spawnSync('ip', [
        'netns',
        'exec',
        lab.hostNs,
        'ssh',
        '-i',
        lab.clientKey,
        '-o',
        'BatchMode=yes',
        '-o',
        `UserKnownHostsFile=${lab.knownHosts}`,
        'root@192.168.10.22',
        'true',
      ]);
      if (r.status !== 0) throw new Error(`ssh reference failed: ${r.stderr}`);
      ssh.push((performance.now() - t) / 1000);
    }

    const own = median(noop.map((t) => t.own));
    console.log('provision over ssh2, sshd lab (4 nodes, scratch roots, the real 100 MB dist/ipsec-cni):');
    console.log(row('full cluster from empty roots', full));
    console.log(row('no-op re-provision of minion2', noop));
    console.log(
      `    of which minion2's ssh session ${median(noop.map((t) => t.node)).toFixed(2)} s; target < ${NOOP_TARGET_S} s: ${own < NOOP_TARGET_S ? 'met' : 'MISSED'} (own time)`,
    );
    console.log(
      `  reference: OpenSSH \`ssh root@node true\`  ${median(ssh).toFixed(2)} s → the no-op session costs ${(median(noop.map((t) => t.node)) / median(ssh)).toFixed(1)}× one bare ssh command`,
    );

    // The no-op as a whole command, in the host namespace (hyperfine runs there).
    const args = [...provisionArgs(lab, config), '--node', 'minion2'].join(' ');
    console.log('no-op re-provision of minion2, whole command (hyperfine, in the host namespace):');
    const times = hyperfine(
      [
        { label: 'npm run provision -- --node minion2', command: `npm run --silent provision -- ${args}` },
        { label: 'node bin/kube-ipsec provision --node minion2', command: `node bin/kube-ipsec provision ${args}` },
        { label: 'tsx: node --import tsx src/cli.ts provision …', command: `node --import tsx src/cli.ts provision ${args}` },
        { label: 'node -e 0', command: 'node -e 0' },
        { label: 'ssh root@minion2 true', command: `ssh -i ${lab.clientKey} -o BatchMode=yes -o UserKnownHostsFile=${lab.knownHosts} root@192.168.10.22 true` },
      ],
      { runs: quick ? 3 : 10, warmup: 1, cwd: repoRoot, prefix: ['ip', 'netns', 'exec', lab.hostNs] },
    );
    for (const l of formatTimes(times, 'node bin/kube-ipsec provision --node minion2')) console.log(l);
    const whole = times[0]!.median;

    // What `kube-ipsec check` pays per command on a node: a session of an open master
    // connection (ControlMaster), against a new OpenSSH connection each time.
    const ctl = join(lab.dir, 'bench-master.ctl');
    const openssh = `ssh -i ${lab.clientKey} -o BatchMode=yes -o UserKnownHostsFile=${lab.knownHosts} -o ControlPath=${ctl}`;
    const master = spawn('ip', ['netns', 'exec', lab.hostNs, 'sh', '-c', `exec ${openssh} -o ControlMaster=yes -o ControlPersist=no -N root@192.168.10.22`], {
      stdio: 'ignore',
    });
    try {
      for (let i = 0; i < 100 && spawnSync('ip', ['netns', 'exec', lab.hostNs, 'sh', '-c', `${openssh} -O check root@192.168.10.22`]).status !== 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      console.log('one command on a node (`true`; hyperfine, in the host namespace):');
      const one = hyperfine(
        [
          { label: 'new OpenSSH connection', command: `${openssh} -o ControlMaster=no -S none root@192.168.10.22 true` },
          { label: 'session of a master connection', command: `${openssh} -o ControlMaster=no root@192.168.10.22 true` },
        ],
        { runs: quick ? 5 : 20, warmup: 2, cwd: repoRoot, prefix: ['ip', 'netns', 'exec', lab.hostNs] },
      );
      for (const l of formatTimes(one, 'new OpenSSH connection')) console.log(l);
    } finally {
      master.kill('SIGTERM');
    }
    console.log(
      `  npm run provision -- --node minion2: ${whole.toFixed(2)} s; target ≤ ${NOOP_COMMAND_TARGET_S} s: ${whole <= NOOP_COMMAND_TARGET_S ? 'met' : 'MISSED'}`,
    );
    return own < NOOP_TARGET_S && whole <= NOOP_COMMAND_TARGET_S ? 0 : 1;
  } finally {
    await lab.cleanup();
  }
}
