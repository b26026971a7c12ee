// Vagrant benchmark: the user's first command and the re-provisioning of one node, with
// vagrant-libvirt under software emulation in a libvirt sandbox of its own (as the e2e test
// runs it), against the VM lab's path measured in the same run (qemu started by the lab,
// provisioned by `kube-ipsec provision` over ssh) on the same cluster of a master and two
// minions (kube-ipsec's box / the VM lab's image of the same recipe). With what `npm run
// binaries` built in ./binaries, the cluster runs Kubernetes (master 2 vCPUs and 2048 MB,
// minions one and 1536 MB); with --network-only or no build, the network alone (768 MB, one
// vCPU each). Every figure is under software emulation (no KVM on the machine it was made for):
//   - `vagrant up --provision` wall time, split per machine into box import, boot (domain
//     start → sshd and Vagrant's key), configure (hostname, private network) and
//     provisioning (the provisioners), then convergence (every tunnel up);
//   - with Kubernetes: from the tunnels to every minion Ready and to CoreDNS available, and
//     pod start latency (create → Ready, from the pods' own timestamps) with the share of it
//     the CNI ADD took (ipsec-cni's log: one line per call with its duration);
//     parallel (vagrant-libvirt's default) and, unless --quick, --no-parallel;
//   - `vagrant provision minion2`, as a no-op and with one changed value (ipsec.dpdDelay);
//   - the same no-op through `npm run provision -- --node minion2` (target: whole command
//     ≤ 1 s), with nodes[].ssh pinned in cluster.yaml and through `vagrant ssh-config`;
//   - the VM lab: boot, `kube-ipsec provision` of every node, convergence, the no-op.
// Whole commands are timed with hyperfine, run inside the sandbox (or the lab's wire namespace).
//
//   npm run bench vagrant [-- --quick] [--network-only] [--up-only]
// (--up-only: the first `up`, Kubernetes and pod start, then destroy; no re-provisioning, no
// VM lab reference)
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { down } from '../src/lab/down.ts';
import { ensureImage } from '../src/lab/vm/image.ts';
import { builtBinaries, waitForKubernetes } from '../src/lab/vm/live.ts';
import { vmUp } from '../src/lab/vm/up.ts';
import { loadClusterFile } from '../src/config/load.ts';
import { planCluster } from '../src/plan/plan.ts';
import { NETNS_DIR } from '../src/check/target.ts';
import { processRunner, waitFor } from '../src/run.ts';
import { shellQuote } from '../src/shell.ts';
import { parseSshConfig } from '../src/ship/targets.ts';
import { ensureBox } from '../src/vagrant/box.ts';
import { assertPluginBuilt } from '../test/helpers/cni.ts';
import { repoRoot } from '../test/helpers/cluster.ts';
import { NODES, VagrantCluster, type VagrantRun } from '../test/vagrant/cluster.ts';
import { machinePhases } from '../test/vagrant/phases.ts';
import { LibvirtSandbox } from '../test/vagrant/sandbox.ts';
import { formatTimes, hyperfine, type Times } from './lib/hyperfine.ts';
import { median } from './lib/stats.ts';

const NOOP_COMMAND_TARGET_S = 1;
const s = (x: number | undefined) => (x === undefined ? '    -' : `${x.toFixed(1).padStart(5)} s`);
const cmd = (argv: string[]) => argv.map(shellQuote).join(' ');

interface UpTimes {
  wall: number;
  convergence: number;
  /** With Kubernetes: seconds after the tunnels until every minion was Ready, and CoreDNS available. */
  nodesReady?: number;
  dnsReady?: number;
}

const POD_START_PODS = 6;

/** Pod start latency on the live cluster: per pod create → Ready, and the CNI ADD of its sandbox. */
interface PodStart {
  /** Seconds from each pod's creation to its Ready condition (the API server's clock, 1 s resolution). */
  latency: number[];
  /** Milliseconds of each ipsec-cni ADD the pods' sandboxes made (its log on each minion). */
  cniAdd: number[];
}

/** Creates POD_START_PODS agnhost pods at once and reads how long each took to be Ready, and what its CNI ADD cost. */
async function podStart(cluster: VagrantCluster, image: string): Promise<PodStart> {
  const kubectl = (args: string[]) => cluster.kubectlOut(args, 960_000);
  const minions = NODES.slice(1).map((n) => n.name);
  const logLines = async (node: string) => Number((await cluster.onNode(node, 'wc -l < /var/log/ipsec-cni.log 2>/dev/null || echo 0')).stdout.trim());
  const before = Object.fromEntries(await Promise.all(minions.map(async (m) => [m, await logLines(m)] as const)));
  await kubectl(['create', 'deployment', 'bench-pod-start', `--image=${image}`, `--replicas=${POD_START_PODS}`, '--', '/agnhost', 'pause']);
  try {
    await kubectl(['rollout', 'status', 'deployment/bench-pod-start', '--timeout=900s']);
    const pods = JSON.parse(await kubectl(['get', 'pods', '-l', 'app=bench-pod-start', '-o', 'json'])) as {
      items: { metadata: { creationTimestamp: string }; status: { conditions: { type: string; lastTransitionTime: string }[] } }[];
    };
    const latency = pods.items.map(
      (x) => (Date.parse(x.status.conditions.find((c) => c.type === 'Ready')!.lastTransitionTime) - Date.parse(x.metadata.creationTimestamp)) / 1000,
    );
    const cniAdd: number[] = [];
    for (const m of minions) {
      const added = (await cluster.onNode(m, `tail -n +${before[m]! + 1} /var/log/ipsec-cni.log`)).stdout.split('\n').filter(Boolean);
      for (const l of added) {
        const r = JSON.parse(l) as { cmd: string; ok: boolean; ms: number };
        if (r.cmd === 'ADD' && r.ok) cniAdd.push(r.ms);
      }
    }
    return { latency, cniAdd };
  } finally {
    await cluster.kubectl(['delete', 'deployment', 'bench-pod-start', '--wait=true'], true);
  }
}

/** `vagrant up --provision` (+ flags), its phases printed; then the seconds until every tunnel is up. */
async function up(cluster: VagrantCluster, label: string, flags: string[], kubernetes: boolean): Promise<UpTimes> {
  const r: VagrantRun = await cluster.vagrant(['up', '--provision', '--provider', 'libvirt', ...flags]);
  if (r.code !== 0) throw new Error(r.tail);
  await cluster.sshConfig();
  const since = performance.now();
  if (!(await waitFor(() => cluster.everyPairUp(), 300_000, 1000))) throw new Error(`${label}: the tunnels did not all come up`);
  const convergence = (performance.now() - since) / 1000;
  console.log(`vagrant up --provision ${flags.join(' ')}(${label}): ${s(r.seconds)} wall, then every tunnel up within ${s(convergence)}`);
  console.log('  machine    box import   boot   configure  provisioning   (first line → last line)');
  for (const p of machinePhases(r.lines)) {
    console.log(`  ${p.machine.padEnd(9)} ${s(p.boxImport)}  ${s(p.boot)}  ${s(p.configure)}  ${s(p.provisioning)}     (${s(p.first)} → ${s(p.last)})`);
  }
  if (!kubernetes) return { wall: r.seconds, convergence };
  const plan = planCluster(loadClusterFile(cluster.path('cluster.yaml')));
  const k = await waitForKubernetes(
    cluster.sb.runner,
    (argv) => cluster.sshArgv(plan.master.name, argv.map(shellQuote).join(' ')),
    plan,
    () => undefined,
  );
  const total = r.seconds + convergence;
  console.log(
    `  Kubernetes: every minion Ready ${s(k.nodesReady)} and CoreDNS available ${s(k.dnsReady)} after the tunnels; from vagrant up: Ready ${s(total + k.nodesReady)}, CoreDNS ${s(total + k.dnsReady)}`,
  );
  return { wall: r.seconds, convergence, nodesReady: k.nodesReady, dnsReady: k.dnsReady };
}

export async function run(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench vagrant: run as root (namespaces, libvirtd, qemu)');
    return 2;
  }
  assertPluginBuilt();
  const quick = argv.includes('--quick');
  const upOnly = argv.includes('--up-only');
  const kubernetes = !argv.includes('--network-only') && builtBinaries() !== undefined;
  console.log(
    kubernetes
      ? 'with Kubernetes (the build in ./binaries); every figure under software emulation'
      : `the network alone (${argv.includes('--network-only') ? '--network-only' : 'no build in ./binaries: npm run binaries'}); every figure under software emulation`,
  );
  const image = await ensureImage({ runner: processRunner, log: (l) => console.log(`  ${l}`) });
  const results: {
    vagrant?: UpTimes;
    sequential?: UpTimes;
    noop?: Times[];
    changed?: Times[];
    cli?: Times[];
    lab?: { wall: number; boot: number; provision: number; convergence: number; noop: Times[] };
    pods?: PodStart;
  } = {};
  let status = 0;

  // The Vagrant cluster's nodes (with their sizes), for the VM lab's run of the same cluster.
  let nodesYaml = '';
  const sb = await LibvirtSandbox.start('kvb');
  try {
    const cluster = new VagrantCluster(sb);
    const box = await ensureBox({ runner: sb.runner, vagrantHome: sb.env().VAGRANT_HOME! });
    console.log(`box: recipe ${image.key}, vagrant box add ${s(box.addSeconds)} (a fresh Vagrant home; libvirt imports it into its pool at the first up)`);
    await cluster.writeConfig({ kubernetes });
    nodesYaml = /^nodes:\n(  - .*\n)+/m.exec(readFileSync(cluster.path('cluster.yaml'), 'utf8'))![0];
    results.vagrant = await up(cluster, 'parallel, the default', [], kubernetes);
    if (kubernetes) {
      const plan = planCluster(loadClusterFile(cluster.path('cluster.yaml')));
      results.pods = await podStart(cluster, plan.images.smoke.ref);
      const share = median(results.pods.cniAdd) / 1000 / median(results.pods.latency);
      console.log(
        `pod start (${POD_START_PODS} pods at once): create → Ready median ${s(median(results.pods.latency))} (max ${s(Math.max(...results.pods.latency))}); ipsec-cni ADD median ${(median(results.pods.cniAdd) / 1000).toFixed(2)} s over ${results.pods.cniAdd.length} calls: ${(share * 100).toFixed(1)} % of a pod's start`,
      );
    }
    if (upOnly) {
      const d = await cluster.vagrant(['destroy', '-f']);
      if (d.code !== 0) throw new Error(d.tail);
      return status;
    }

    // Whole commands inside the sandbox, where the VMs' management network is.
    const inSandbox = sb.argv([], { cwd: repoRoot, env: cluster.vars() });
    const config = cluster.path('cluster.yaml');
    const toggle = `if grep -q 'dpdDelay: 5s' ${config}; then sed -i 's/dpdDelay: 5s/dpdDelay: 7s/' ${config}; else sed -i 's/dpdDelay: 7s/dpdDelay: 5s/' ${config}; fi`;
    const runs = quick ? 2 : 3;
    console.log(`vagrant provision minion2 (hyperfine, ${runs} runs each):`);
    results.noop = hyperfine([{ label: 'vagrant provision minion2 (no-op)', command: 'vagrant provision minion2' }], {
      runs,
      warmup: 0,
      cwd: repoRoot,
      prefix: inSandbox,
    });
    results.changed = hyperfine([{ label: 'vagrant provision minion2 (ipsec.dpdDelay changed)', command: 'vagrant provision minion2', prepare: toggle }], {
      runs,
      warmup: 0,
      cwd: repoRoot,
      prefix: inSandbox,
    });
    for (const l of formatTimes([...results.noop, ...results.changed], 'vagrant provision minion2 (no-op)')) console.log(l);

    // The same no-op through kube-ipsec provision: targets through `vagrant ssh-config`, and
    // pinned in cluster.yaml (what `vagrant ssh-config` says, with the host keys recorded).
    if (readFileSync(config, 'utf8').includes('dpdDelay: 7s')) writeFileSync(config, readFileSync(config, 'utf8').replace('dpdDelay: 7s', 'dpdDelay: 5s'));
    const hosts = parseSshConfig(readFileSync(cluster.path('ssh_config'), 'utf8'));
    const pinned = cluster.path('cluster-ssh.yaml');
    writeFileSync(
      pinned,
      readFileSync(config, 'utf8').replace(/^  - \{ name: (\w+), (.*)\}$/gm, (_all, name: string, rest: string) => {
        const h = hosts.get(name)!;
        return `  - { name: ${name}, ${rest.trim()}, ssh: { host: ${h.hostname}, port: ${h.port ?? 22}, user: ${h.user}, privateKey: ${h.identityFiles[0]} } }`;
      }),
    );
    const provision = (file: string) =>
      `npm run --silent provision -- --config ${file} --out ${cluster.path('out')} --state ${cluster.path('state')} --node minion2`;
    for (const file of [config, pinned]) {
      const first = await sb.run(['sh', '-c', `${provision(file)} --accept-new-host-keys`], {
        cwd: repoRoot,
        vars: cluster.vars(),
        allowFail: true,
        timeoutMs: 600_000,
      });
      if (first.code !== 0) throw new Error(`kube-ipsec provision --node minion2 (${file}) failed:\n${first.stdout}\n${first.stderr}`);
    }
    console.log(`the same no-op through kube-ipsec provision (hyperfine):`);
    results.cli = hyperfine(
      [
        { label: 'npm run provision -- --node minion2 (nodes[].ssh pinned)', command: provision(pinned) },
        { label: 'npm run provision -- --node minion2 (vagrant ssh-config)', command: provision(config) },
        { label: 'ssh minion2 true (OpenSSH, reference)', command: cmd(['ssh', '-F', cluster.path('ssh_config'), 'minion2', 'true']) },
      ],
      { runs: quick ? 3 : 10, warmup: 1, cwd: repoRoot, prefix: inSandbox },
    );
    for (const l of formatTimes(results.cli, 'ssh minion2 true (OpenSSH, reference)')) console.log(l);
    const whole = results.cli[0]!.median;
    console.log(
      `  npm run provision -- --node minion2 (pinned): ${whole.toFixed(2)} s; target ≤ ${NOOP_COMMAND_TARGET_S} s: ${whole <= NOOP_COMMAND_TARGET_S ? 'met' : 'MISSED'}`,
    );
    if (whole > NOOP_COMMAND_TARGET_S) status = 1;

    if (!quick) {
      const d = await cluster.vagrant(['destroy', '-f']);
      if (d.code !== 0) throw new Error(d.tail);
      results.sequential = await up(cluster, 'one machine after the other', ['--no-parallel'], kubernetes);
    }
    const d = await cluster.vagrant(['destroy', '-f']);
    if (d.code !== 0) throw new Error(d.tail);
  } finally {
    const extra = await sb.stop();
    if (extra.length) console.error(`bench vagrant: processes left in the sandbox: ${extra.map((p) => `${p.pid} ${p.comm}`).join(', ')}`);
  }

  // The VM lab's path, same cluster, same recipe, right after.
  const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-bench-vagrant-lab-'));
  const stateDir = join(dir, 'lab');
  try {
    const configFile = join(dir, 'cluster.yaml');
    // The Vagrant cluster's own nodes (with their sizes), as the VM lab reads them.
    writeFileSync(configFile, nodesYaml);
    const t = performance.now();
    const { lab } = await vmUp({
      configFile,
      stateDir,
      prefix: `kvl${process.pid.toString(36).slice(-4)}`,
      ...(kubernetes ? {} : { memoryMb: 768, built: 'none' as const }),
      runner: processRunner,
    });
    const wall = (performance.now() - t) / 1000;
    const vm = lab.state.data.vm!;
    const boot = Math.max(...Object.values(vm.bootSeconds));
    const args = [
      'provision',
      '--config',
      join(stateDir, 'cluster.yaml'),
      '--out',
      join(stateDir, 'out'),
      '--state',
      join(stateDir, 'pki'),
      '--known-hosts',
      join(stateDir, 'ssh', 'known_hosts'),
      '--node',
      'minion2',
    ];
    const noop = hyperfine(
      [{ label: 'npm run provision -- --node minion2 (VM lab)', command: `npm run --silent ${cmd(args.slice(0, 1))} -- ${cmd(args.slice(1))}` }],
      {
        runs: quick ? 3 : 10,
        warmup: 1,
        cwd: repoRoot,
        prefix: ['nsenter', `--net=${NETNS_DIR}/${lab.topology.wire.ns}`],
      },
    );
    results.lab = { wall, boot, provision: vm.provisionSeconds ?? NaN, convergence: lab.state.data.convergedIn ?? NaN, noop };
    if (vm.kubernetes)
      console.log(`VM lab Kubernetes: every minion Ready ${s(vm.kubernetes.nodesReady)} and CoreDNS available ${s(vm.kubernetes.dnsReady)} after provisioning`);
    console.log(
      `VM lab (lab up --vm, same cluster): ${s(wall)} wall, of which the slowest VM's boot to sshd ${s(boot)}, kube-ipsec provision of every node ${s(results.lab.provision)}; tunnels ${s(results.lab.convergence)} after`,
    );
    for (const l of formatTimes(noop)) console.log(l);
  } finally {
    const r = await down(stateDir);
    for (const w of r.warnings) console.error(`down: ${w}`);
    if (r.warnings.length) status = 1;
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }

  const v = results.vagrant!;
  const l = results.lab!;
  console.log('vagrant against the VM lab (same cluster, same run):');
  console.log(`  up, provisioned, converged:  vagrant ${s(v.wall + v.convergence)}   VM lab ${s(l.wall)}   ${((v.wall + v.convergence) / l.wall).toFixed(2)}×`);
  if (results.sequential)
    console.log(
      `  vagrant up --no-parallel:    ${s(results.sequential.wall + results.sequential.convergence)}   ${((results.sequential.wall + results.sequential.convergence) / (v.wall + v.convergence)).toFixed(2)}× the parallel up`,
    );
  const noopVagrant = results.noop![0]!.median;
  const noopLab = l.noop[0]!.median;
  console.log(
    `  no-op re-provision of minion2: vagrant provision ${s(noopVagrant)}   npm run provision (pinned) ${s(results.cli![0]!.median)}   VM lab ${s(noopLab)}   → vagrant ${(noopVagrant / noopLab).toFixed(1)}× the VM lab's`,
  );
  return status;
}
