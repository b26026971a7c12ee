// VM lab benchmark: the node image built cold (into a scratch cache) and found cached, a
// master and two minions booted to sshd, the product's full provisioning of them, mesh
// convergence with kernel ESP for auto=start (rendered) and auto=route (written into the
// VMs' ipsec.conf for the measurement, then provisioned back), the recovery of one restarted
// strongSwan under each, and a minion's reboot until traffic flows again. Reference numbers
// are those measured for the recipe on an idle 2-core machine (shared/LAB.md).
//
//   npm run bench vm [-- --quick]     --quick: the cold build is not repeated (its recorded time is shown)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkFailClosed } from '../src/check/checks/fail-closed.ts';
import { down } from '../src/lab/down.ts';
import { DEFAULT_PLUGIN } from '../src/lab/up.ts';
import { checkReboot } from '../src/check/checks/reboot.ts';
import { measureConvergence, type Convergence, type StartAction } from '../src/lab/vm/converge.ts';
import { ensureImage, recordedBuildSeconds } from '../src/lab/vm/image.ts';
import { Reachability } from '../src/check/probe.ts';
import { processRunner } from '../src/run.ts';
import { provisionLab } from '../src/lab/vm/provision.ts';
import { vmUp } from '../src/lab/vm/up.ts';

const REFERENCE = { imageBuild: 51, boot: 25 };
const CLUSTER = `nodes:
  - { name: master, role: master, ip: 192.168.10.10 }
  - { name: minion1, ip: 192.168.10.21 }
  - { name: minion2, ip: 192.168.10.22 }
`;

const s = (x: number | undefined) => (x === undefined ? 'n/a' : `${x.toFixed(1)} s`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-bench-vm-'));
  const stateDir = join(dir, 'lab');
  const configFile = join(dir, 'cluster.yaml');
  writeFileSync(configFile, CLUSTER);
  let status = 0;
  try {
    console.log('node image:');
    if (!quick) {
      const scratch = mkdtempSync('/var/tmp/kube-ipsec-bench-image-');
      try {
        const cold = await ensureImage({ runner: processRunner, cacheDir: scratch });
        console.log(`  cold build (scratch cache)        ${s(cold.builtIn)}   reference ${REFERENCE.imageBuild} s for the recipe`);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    }
    const t = performance.now();
    const image = await ensureImage({ runner: processRunner, log: (l) => console.log(`  ${l}`) });
    const cachedMs = performance.now() - t;
    if (quick) console.log(`  cold build (when cached, recorded) ${s(image.builtIn ?? recordedBuildSeconds(image))}   reference ${REFERENCE.imageBuild} s`);
    console.log(`  cached (recipe hash + lookup)     ${cachedMs.toFixed(0)} ms`);

    const prefix = `kvb${process.pid.toString(36).slice(-4)}`;
    const { lab } = await vmUp({ configFile, stateDir, prefix, runner: processRunner, log: () => {} });
    const vm = lab.state.data.vm!;
    console.log(`VMs (${vm.accel.accel}, ${vm.layout.nodes[0]!.memoryMb} MB each; ${vm.accel.why}):`);
    for (const [node, seconds] of Object.entries(vm.bootSeconds)) console.log(`  boot to sshd  ${node.padEnd(8)} ${s(seconds)}   reference ~${REFERENCE.boot} s (boot to multi-user, one VM, idle host)`);
    console.log(`  full provisioning (3 nodes, kube-ipsec provision over ssh)  ${s(vm.provisionSeconds)}`);

    console.log('mesh convergence with kernel ESP (every strongSwan started at once; until every node reaches every peer):');
    const rounds: Record<StartAction, Convergence[]> = { start: [], route: [] };
    const recovery: Record<StartAction, number[]> = { start: [], route: [] };
    for (const action of ['start', 'route', 'start', 'route'] as const) {
      rounds[action].push(await measureConvergence(lab, action));
      const fc = await checkFailClosed(lab, new Reachability(lab));
      if (!fc.ok) status = 1;
      recovery[action].push(fc.values?.trafficSeconds ?? NaN);
      if (fc.values?.clearPod) console.log(`  ✗ auto=${action}: ${fc.values.clearPod} clear-text pod packets while strongSwan was stopped`);
    }
    for (const action of ['start', 'route'] as const) {
      const traffic = rounds[action].map((c) => c.traffic ?? NaN);
      const sas = rounds[action].map((c) => c.sas ?? NaN);
      console.log(
        `  auto=${action.padEnd(5)}  traffic ${traffic.map((x) => s(x)).join(' / ')}   all SAs ${sas.map((x) => s(x)).join(' / ')}   one restarted strongSwan back ${recovery[action].map((x) => s(x)).join(' / ')}${action === 'start' ? '   (rendered)' : ''}`,
      );
    }
    const ratio = (median(recovery.route) ?? NaN) / (median(recovery.start) ?? NaN);
    console.log(`  → auto=route recovers a restarted node ${ratio.toFixed(1)}× ${ratio >= 1 ? 'slower' : 'faster'}; both fail closed`);
    await provisionLab(lab, DEFAULT_PLUGIN, () => {});

    const reboot = await checkReboot(lab, {});
    if (!reboot.ok) status = 1;
    const v = reboot.values ?? {};
    console.log(`minion reboot (systemctl reboot → …): sshd ${s(v.rebootToSsh)}, tunnels ${s(v.rebootToTunnels)}, traffic ${s(v.rebootToTraffic)}; ${v.clearPod ?? '?'} clear-text pod packets`);
    for (const p of reboot.problems) console.log(`  ✗ ${p}`);
  } finally {
    const r = await down(stateDir);
    if (r.warnings.length) {
      status = 1;
      for (const w of r.warnings) console.error(`down: ${w}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return status;
}
