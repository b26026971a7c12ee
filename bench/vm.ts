// VM lab benchmark: the node image built cold (into a scratch cache) and found cached, a
// master and two minions booted to sshd, the product's full provisioning of them, mesh
// convergence with kernel ESP for the rendered mesh (one initiator per pair), every end
// initiating (the mesh before) and auto=route (written into the VMs' ipsec.conf for the
// measurement, then put back and provisioned), the recovery of one restarted strongSwan under
// each, and a minion's reboot until traffic flows again. Reference numbers
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
import { measureConvergence, renderedIpsecConfs, type Convergence } from '../src/lab/vm/converge.ts';
import { VARIANT_WORDS, type MeshVariant } from '../src/lab/mesh-variants.ts';
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
    // cluster.yaml's lifetimes: no rekey in the middle of a measurement.
    const { lab } = await vmUp({ configFile, stateDir, prefix, lifetimes: 'rendered', built: 'none', runner: processRunner, log: () => {} });
    const vm = lab.state.data.vm!;
    console.log(`VMs (${vm.accel.accel}, ${vm.layout.nodes[0]!.memoryMb} MB each; ${vm.accel.why}):`);
    for (const [node, seconds] of Object.entries(vm.bootSeconds))
      console.log(`  boot to sshd  ${node.padEnd(8)} ${s(seconds)}   reference ~${REFERENCE.boot} s (boot to multi-user, one VM, idle host)`);
    console.log(`  full provisioning (3 nodes, kube-ipsec provision over ssh)  ${s(vm.provisionSeconds)}`);

    console.log(
      'mesh convergence with kernel ESP (every strongSwan started at once; until every node reaches every peer, every SA pair is up, every pair holds one):',
    );
    const variants: MeshVariant[] = ['rendered', 'every-end', 'route'];
    const rounds = new Map<MeshVariant, Convergence[]>(variants.map((v) => [v, []]));
    const recovery = new Map<MeshVariant, number[]>(variants.map((v) => [v, []]));
    const rendered = await renderedIpsecConfs(lab);
    for (const variant of [...variants, ...variants]) {
      rounds.get(variant)!.push(await measureConvergence(lab, rendered, variant));
      const fc = await checkFailClosed(lab, new Reachability(lab));
      // Fail-closed must hold with every variant; its recovery (or not) to one SA pair per peer is measured above, not judged here.
      if (fc.values?.clearPod || fc.values?.answered) status = 1;
      recovery.get(variant)!.push(fc.values?.trafficSeconds ?? NaN);
      if (fc.values?.clearPod) console.log(`  ✗ ${variant}: ${fc.values.clearPod} clear-text pod packets while strongSwan was stopped`);
    }
    for (const variant of variants) {
      const r = rounds.get(variant)!;
      const all = (f: (c: Convergence) => number | undefined) => r.map((c) => s(f(c))).join(' / ');
      console.log(
        `  ${VARIANT_WORDS[variant].padEnd(38)} traffic ${all((c) => c.traffic)}   all SAs ${all((c) => c.sas)}   whole ${all((c) => c.whole)}   one restarted strongSwan back ${recovery
          .get(variant)!
          .map((x) => s(x))
          .join(' / ')}`,
      );
    }
    // Back to the rendered mesh: the file, and charons that loaded it (a reload keeps the
    // variant's SAs and traps), whole again before the reboot is measured.
    await measureConvergence(lab, rendered, 'rendered');
    await provisionLab(lab, DEFAULT_PLUGIN, () => {});

    const reboot = await checkReboot(lab, {});
    if (!reboot.ok) status = 1;
    const v = reboot.values ?? {};
    console.log(
      `minion reboot (systemctl reboot → …): sshd ${s(v.rebootToSsh)}, tunnels ${s(v.rebootToTunnels)}, traffic ${s(v.rebootToTraffic)}; ${v.clearPod ?? '?'} clear-text pod packets`,
    );
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
