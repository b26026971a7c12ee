// `kube-ipsec check`: the checks of the labs, run against any provisioned cluster over ssh —
// Vagrant VMs right after `vagrant up`, or real machines. Nothing is left behind: the test
// pods are deleted through the plugin, the IPAM stores are as they were found, and checks that
// change the running cluster (fail-closed, reprovision, reboot) run only when named.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { clusterCommandLine, clusterPaths } from '../cli-args.ts';
import { ConfigError } from '../config/errors.ts';
import { ShipError } from '../ship/transport.ts';
import { check } from './check.ts';
import { openCluster, type Cleanup, type ClusterSession } from './cluster.ts';
import { CheckError } from './errors.ts';
import { CHECK_NAMES, formatResult, formatVerdict, type CheckName, type CheckReport } from './report.ts';

const DESTRUCTIVE: CheckName[] = ['fail-closed', 'reprovision', 'reboot'];

const HELP = `usage: npm run check -- [options]

Checks a provisioned cluster over ssh (the nodes of cluster.yaml, reached as
\`kube-ipsec provision\` reaches them): ${CHECK_NAMES.filter((c) => !DESTRUCTIVE.includes(c)).join(', ')};
and, only when named in --only, the checks that change the running cluster:
${DESTRUCTIVE.join(', ')}. Exit status 0 only if every check that applies passed.

  --config FILE           cluster description (default ./cluster.yaml, or $KUBE_IPSEC_CONFIG)
  --out DIR               rendered output (default ./out, or $KUBE_IPSEC_OUT); reprovision renders here
  --state DIR             certificates, keys, known_hosts (default .kube-ipsec/ next to the
                          config, or $KUBE_IPSEC_STATE)
  --only LIST             comma-separated checks to run (tunnels always runs)
  --victim NODE           fail-closed: the node whose strongSwan is stopped (default: first minion)
  --reboot-victim NODE    reprovision, reboot: the node re-provisioned or rebooted (default: last minion)
  --pods N                test pods per node that runs pods (default 2)
  --json                  the report as JSON
  --known-hosts FILE      known_hosts to verify nodes with (repeatable; default
                          <state>/known_hosts, then ~/.ssh/known_hosts)
  --accept-new-host-keys  record the key of a node not in known_hosts yet (in the first
                          file) instead of refusing it; a changed key is always refused
`;

export async function main(argv: string[]): Promise<number> {
  const o = clusterCommandLine(HELP, argv, {
    only: { type: 'string' },
    victim: { type: 'string' },
    'reboot-victim': { type: 'string' },
    pods: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    'known-hosts': { type: 'string', multiple: true },
    'accept-new-host-keys': { type: 'boolean', default: false },
  });
  if (typeof o === 'number') return o;
  const only = o.only?.split(',').filter(Boolean) as CheckName[] | undefined;
  const unknown = (only ?? []).filter((n) => !CHECK_NAMES.includes(n));
  if (unknown.length) {
    console.error(`--only: unknown check(s) ${unknown.join(', ')}; known: ${CHECK_NAMES.join(', ')}`);
    return 2;
  }
  const pods = Number(o.pods);
  if (!Number.isInteger(pods) || pods < 1 || pods > 20) {
    console.error(`--pods must be an integer from 1 to 20, not ${o.pods}`);
    return 2;
  }
  const paths = clusterPaths(o);
  // Progress and the connection lines go to stderr with --json, so stdout is the report alone.
  const say = (line: string) => (o.json ? console.error(line) : console.log(line));

  let cluster: ClusterSession;
  try {
    cluster = await openCluster({
      ...paths,
      knownHosts: (o['known-hosts'] ?? [join(paths.stateDir, 'known_hosts'), join(homedir(), '.ssh', 'known_hosts')]).map((f) => resolve(f)),
      acceptNewHostKeys: o['accept-new-host-keys'],
      podsPerNode: pods,
      reprovision: only?.includes('reprovision') ?? false,
      log: (line) => say(`  ${line}`),
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof ShipError || err instanceof CheckError) {
      console.error(err.message);
      return err instanceof ShipError ? 1 : 2;
    }
    throw err;
  }
  for (const n of cluster.nodes) {
    say(`${n.name.padEnd(10)} ${n.ssh} (${n.source}), host key ${n.hostKey}; underlay ${n.underlay}${n.systemd ? '' : '; no systemd'}`);
  }
  const names = cluster.nodes.map((n) => n.name);
  for (const [flag, node] of [
    ['--victim', o.victim],
    ['--reboot-victim', o['reboot-victim']],
  ] as const) {
    if (node !== undefined && !names.includes(node)) {
      console.error(`${flag} ${node} is not a node of ${cluster.target.label} (nodes: ${names.join(', ')})`);
      await cluster.close();
      return 2;
    }
  }

  // An interrupt stops the checks from starting anything more, then puts the cluster back.
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = signal;
    console.error(`\n${signal}: stopping the checks and putting the cluster back as it was found…`);
    cluster.interrupt(`interrupted by ${signal}`);
    void cluster.close(true).then((c) => {
      printCleanup(c, console.error);
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15));
    });
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);

  // While an interrupt's cleanup runs, the handler exits the process: nothing more to do here.
  const whenInterrupted = () => new Promise<number>(() => {});
  try {
    await cluster.makePods();
  } catch (err) {
    if (interrupted) return whenInterrupted();
    console.error(`cannot make the test pods: ${(err as Error).message}`);
    printCleanup(await cluster.close(), console.error);
    return 1;
  }
  say(
    `test pods: ${Object.entries(cluster.target.pods)
      .map(([ns, p]) => `${ns} ${p.ip}`)
      .join(', ')}`,
  );
  let report: CheckReport;
  try {
    report = await check(cluster.target, {
      destructive: 'named',
      ...(only && { only }),
      ...(o.victim !== undefined && { victim: o.victim }),
      ...(o['reboot-victim'] !== undefined && { rebootVictim: o['reboot-victim'] }),
      ...(!o.json && { onResult: (res) => process.stdout.write(formatResult(res)) }),
    });
  } catch (err) {
    if (interrupted) return whenInterrupted();
    printCleanup(await cluster.close(), console.error);
    if (err instanceof CheckError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  if (interrupted) return whenInterrupted();
  const cleanup = await cluster.close();
  for (const s of signals) process.off(s, onSignal);
  const clean = cleanup.problems.length === 0 && cleanup.stores.every((s) => s.asFound) && cleanup.podsDeleted === cleanup.pods;
  if (o.json) process.stdout.write(JSON.stringify({ ...report, cluster: { nodes: cluster.nodes, cleanup } }, null, 2) + '\n');
  else {
    process.stdout.write(formatVerdict(report));
    printCleanup(cleanup, console.log);
  }
  return report.ok && clean ? 0 : 1;
}

function printCleanup(c: Cleanup, print: (line: string) => void): void {
  const stores = c.stores.map((s) => `${s.node} ${s.asFound ? s.detail : `NOT as found: ${s.detail}`}`).join('; ');
  print(`cleanup: ${c.podsDeleted}/${c.pods} test pods deleted through the plugin${stores ? `; IPAM stores: ${stores}` : ''}`);
  for (const r of c.restored) print(`cleanup: ${r}`);
  for (const p of c.problems) print(`cleanup: ✗ ${p}`);
}
