// `lab up --vm`: the rendered cluster's nodes as Debian VMs under qemu on this host,
// provisioned by the product itself. A cached node image (built once per recipe), one
// copy-on-write overlay and two taps per VM inside the lab's wire namespace, the lab's ssh
// keys handed to each VM in its seed, then `kube-ipsec provision` (run inside the wire
// namespace) installs every node over ssh exactly as it would a Vagrant VM, and pods are
// made by the plugin inside each minion. Everything created is recorded before it exists.
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Document } from 'yaml';
import { parseCluster } from '../../config/load.ts';
import { PATHS } from '../../plan/paths.ts';
import { imageArchiveName, planCluster, type Plan } from '../../plan/plan.ts';
import { stopwatch, timer } from '../../clock.ts';
import { LabError, onPath } from '../host.ts';
import { linkOrCopy } from '../link.ts';
import type { Lab } from '../lab.ts';
import { meshStatus } from '../../check/mesh.ts';
import { ipBatch } from '../network.ts';
import { mapLimit } from '../../check/probe.ts';
import { provisionLab } from './provision.ts';
import { createPods } from '../../check/pods.ts';
import { processRunner, waitFor, type Runner } from '../../run.ts';
import { renderForLab, withLabOverrides, type LabLifetimes } from '../render.ts';
import { LabState } from '../state.ts';
import { labTopology, upstreamBatch, type LabTopology } from '../topology.ts';
import { assertRoomForLab, DEFAULT_PLUGIN } from '../up.ts';
import { vmLab, type VmBackend } from './backend.ts';
import { debianPackage, DEFAULT_BINARIES_DIR } from './binaries.ts';
import { ensureImage, type NodeImage } from './image.ts';
import { labTaps, seedText, vmLayout, vmWireBatch, type VmLayout } from './layout.ts';
import { chooseAccel, overlayArgv, qemuArgv, QEMU, QEMU_COMM, startQemu, vmFiles } from './qemu.ts';
import { generateKeys, seedKeys, type LabKeys } from './ssh.ts';
import { buildTestImage, TEST_IMAGE } from './test-image.ts';
import { builtBinaries, labBinariesDir, waitForKubernetes } from './live.ts';
import { MANIFEST_FILE } from '../../binaries/manifest.ts';

export interface VmUpOptions {
  configFile: string;
  stateDir: string;
  prefix: string;
  podsPerMinion?: number;
  plugin?: string;
  /** MB of memory per VM. */
  memoryMb?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
  imageCache?: string;
  /** Where Debian's etcd-server .deb is cached, for a lab without built binaries. */
  binariesDir?: string;
  /**
   * The output of `npm run binaries` (default ./binaries): Kubernetes runs in the VMs. `none`,
   * or no build there: the network alone (Debian's etcd, a busybox smoke image, Kubernetes
   * units installed and idle).
   */
  built?: string | 'none';
  /** VMs booting at once (default: the host's CPUs). */
  parallelBoots?: number;
  /** short (default): lifetimes of seconds, so that check sees rekeys; rendered: cluster.yaml's. */
  lifetimes?: LabLifetimes;
  runner?: Runner;
  log?: (line: string) => void;
}

const TOOLS: Record<string, string> = {
  [QEMU]: 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  ip: 'iproute2',
  nsenter: 'util-linux',
  flock: 'util-linux',
  tcpdump: 'tcpdump',
  ping: 'iputils-ping',
  'apt-get': 'apt',
  podman: 'podman',
};

function vmPreflight(plugin: string): void {
  if (process.getuid?.() !== 0) throw new LabError('the VM lab needs root (network namespaces, taps, qemu, debootstrap): run it as root');
  const problems = Object.entries(TOOLS)
    .filter(([tool]) => !onPath(tool))
    .map(([tool, pkg]) => `${tool} is missing (apt-get install ${pkg})`);
  if (!onPath('debootstrap')) problems.push('debootstrap is missing (apt-get install debootstrap busybox-static cpio kmod): the node image is built with it');
  if (!existsSync(plugin)) problems.push(`${plugin} does not exist: run \`npm run build\``);
  if (problems.length) throw new LabError(`cannot start the VM lab:\n  ${problems.join('\n  ')}`);
}

export interface VmUpResult {
  lab: Lab;
  backend: VmBackend;
  image: NodeImage;
}

export async function vmUp(opts: VmUpOptions): Promise<VmUpResult> {
  const runner = opts.runner ?? processRunner;
  const log = opts.log ?? (() => {});
  const plugin = resolve(opts.plugin ?? DEFAULT_PLUGIN);
  const stateDir = resolve(opts.stateDir);
  vmPreflight(plugin);
  assertRoomForLab(stateDir, opts.prefix);
  const clock = stopwatch();

  const image = await ensureImage({ runner, log, ...(opts.imageCache !== undefined && { cacheDir: opts.imageCache }) });
  log(
    image.builtIn !== undefined
      ? `node image ${image.key} built in ${image.builtIn.toFixed(0)} s`
      : `node image ${image.key} (cached in ${dirname(image.dir)})`,
  );
  const accel = await chooseAccel(image, opts.accel ?? 'auto');
  log(`accelerator: ${accel.why}`);
  const built = opts.built === 'none' ? undefined : builtBinaries(opts.built);
  if (opts.built !== undefined && opts.built !== 'none' && !built) {
    throw new LabError(`${opts.built} holds no ${MANIFEST_FILE}: run npm run binaries -- --dir ${opts.built}, or pass --binaries none for the network alone`);
  }

  // The plan (and so the layout and keys) first; the render needs the keys' fingerprints.
  const configFile = resolve(opts.configFile);
  const lifetimes = opts.lifetimes ?? 'short';
  const plan = planCluster(parseCluster(withLabOverrides(readFileSync(configFile, 'utf8'), 'kernel', lifetimes), configFile));
  const topology = labTopology(plan, opts.prefix, opts.podsPerMinion);
  const layout = vmLayout(plan, topology, opts.memoryMb);
  const state = LabState.create(stateDir, {
    backend: 'vm',
    prefix: opts.prefix,
    configFile,
    outDir: join(stateDir, 'out'),
    espMode: 'kernel',
    topology,
    vm: {
      layout,
      image: { key: image.key, dir: image.dir },
      accel,
      taps: [],
      overlays: [],
      bootSeconds: {},
      ...(image.builtIn !== undefined && { imageBuildSeconds: image.builtIn }),
    },
  });
  const keys = await generateKeys(runner, stateDir, layout);
  // The lab's own binaries.dir: the built release (links), or Debian's etcd and a smoke image
  // built here from busybox-static; provisioning verifies and installs either as a user's.
  const binariesDir = join(stateDir, 'binaries');
  mkdirSync(binariesDir, { recursive: true });
  let smoke: { image: string; id: string };
  let files: Awaited<ReturnType<typeof renderForLab>>;
  if (built) {
    labBinariesDir(built, binariesDir);
    smoke = { image: built.manifest.images.smoke.image, id: built.manifest.images.smoke.id };
    log(
      `binaries: Kubernetes ${built.manifest.builtFor.kubernetes}, etcd ${built.manifest.builtFor.etcd}, cri-dockerd ${built.manifest.builtFor.criDockerd} built by npm run binaries (${built.dir})`,
    );
    files = await renderForLab(configFile, stateDir, 'kernel', lifetimes, (doc) => labOverrides(doc, layout, keys, { dir: binariesDir }));
  } else {
    const etcd = await debianPackage(runner, 'etcd-server', opts.binariesDir ?? DEFAULT_BINARIES_DIR);
    log(`etcd for the master: Debian's etcd-server ${etcd.version} (${etcd.file}); no built binaries: Kubernetes stays idle`);
    const etcdArchive = join(binariesDir, basename(etcd.file));
    if (!existsSync(etcdArchive)) linkOrCopy(etcd.file, etcdArchive);
    const test = await buildTestImage(runner, join(stateDir, 'image-build'), join(binariesDir, imageArchiveName(TEST_IMAGE)));
    smoke = test;
    log(`smoke image ${test.image} (${test.id}) built from busybox-static by podman: ${test.archive}`);
    files = await renderForLab(configFile, stateDir, 'kernel', lifetimes, (doc) =>
      labOverrides(doc, layout, keys, { dir: binariesDir, smoke: test, etcd, allowAbsent: true }),
    );
  }
  log(`rendered ${files.outDir} for VMs (ESP in the kernel; ssh and binaries.dir set for the lab): ${seconds(clock())}`);

  const lab = vmLab({ stateDir, state, topology, views: new Map(), runner }, plugin);
  const backend = lab.backend as VmBackend;

  state.addNamespaces([topology.wire.ns, topology.upstream.ns]);
  state.updateVm({ taps: labTaps(layout) });
  await buildVmNetwork(runner, topology, layout);
  log(
    `wire namespace ${topology.wire.ns}: underlay ${topology.wire.bridge} (upstream ${topology.upstream.ip}), management ${layout.mgmt.bridge} ${layout.mgmt.cidr}, ${labTaps(layout).length} taps: ${seconds(clock())}`,
  );

  const limit = Math.max(1, opts.parallelBoots ?? availableParallelism());
  await mapLimit(layout.nodes, limit, async (v) => {
    const f = vmFiles(stateDir, v.name);
    mkdirSync(f.dir, { recursive: true });
    writeFileSync(f.seed, seedText(topology, layout, v.name, seedKeys(keys, v.name)), { mode: 0o600 });
    state.updateVm({ overlays: [...state.data.vm!.overlays, f.overlay] });
    await runner.run(overlayArgv(image, f), { timeoutMs: 60_000 });
    const sinceStart = timer();
    const pid = await startQemu(topology.wire.ns, qemuArgv(image, v, f, accel), f);
    state.addProcess({ pid, comm: QEMU_COMM, ns: topology.wire.ns, role: 'vm', node: v.name, what: `VM ${v.name}` });
    await backend.connect([v.name], 600_000);
    const booted = sinceStart();
    state.updateVm({ bootSeconds: { [v.name]: booted } });
    log(`${v.name}: booted (${accel.accel}, ${v.memoryMb} MB), sshd up ${booted.toFixed(1)} s after qemu started`);
  });

  clock();
  await provisionLab(lab, plugin, (line) => log(`provision: ${line}`));
  const provisionSeconds = clock();
  state.updateVm({ provisionSeconds });
  log(`provisioned every node with \`kube-ipsec provision\`: ${seconds(provisionSeconds)}`);
  await checkLoadedImage(runner, backend, plan, smoke, log);
  const kubernetes = built ? await waitForKubernetes(runner, (argv) => backend.onNode(plan.master.name, argv), plan, log) : undefined;
  if (kubernetes) state.updateVm({ kubernetes });

  const sinceProvisioned = timer();
  const converged = await waitFor(async () => (await meshStatus(lab)).every((p) => p.up), 120_000, 250);
  const convergedIn = converged ? sinceProvisioned() : undefined;
  state.update(convergedIn === undefined ? {} : { convergedIn });
  log(
    converged
      ? `every IKE/CHILD SA pair up (${convergedIn!.toFixed(2)} s after provisioning ended)`
      : `not every IKE/CHILD SA pair is up after ${seconds(clock())} (\`check\` says which)`,
  );

  const pods = await createPods(lab);
  state.update({ pods, phase: 'up' });
  log(`${Object.keys(pods).length} pods made by ${PATHS.cniPlugin} inside the minions: ${seconds(clock())}`);
  return { lab, backend, image };
}

/**
 * The image archive went the product's way (verified by provision/install-binaries, loaded by
 * kube-ipsec-images.service): every minion's docker must now hold it, with the pinned image ID.
 */
async function checkLoadedImage(
  runner: Runner,
  backend: VmBackend,
  plan: Plan,
  image: { image: string; id: string },
  log: (line: string) => void,
): Promise<void> {
  await mapLimit(plan.minions, plan.minions.length, async (m) => {
    const r = await runner.run(backend.onNode(m.name, ['docker', 'image', 'inspect', '--format', '{{.Id}}', image.image]), {
      allowFail: true,
      timeoutMs: 60_000,
    });
    const id = r.stdout.trim();
    if (r.code !== 0 || id !== image.id) {
      throw new LabError(
        `${m.name}: docker does not hold ${image.image} with image ID ${image.id} after provisioning (${r.code === 0 ? `it has ${id}` : r.stderr.trim()}): journalctl -u kube-ipsec-images.service on ${m.name}`,
      );
    }
    log(`${m.name}: docker holds ${image.image} ${id}, loaded from its archive by kube-ipsec-images.service`);
  });
}

/**
 * The lab's cluster.yaml: ssh to the management addresses with pinned host keys, and the lab's
 * binaries.dir; without built binaries also Debian's etcd and the busybox smoke image, with
 * the absent Kubernetes archives allowed.
 */
export function labOverrides(
  doc: Document,
  layout: VmLayout,
  keys: LabKeys,
  binaries: { dir: string; allowAbsent?: boolean; smoke?: { image: string; id: string }; etcd?: { upstream: string; url: string; sha256: string } },
): void {
  const nodes = doc.get('nodes') as { items: unknown[] } | undefined;
  layout.nodes.forEach((v) => {
    const index = (nodes?.items ?? []).findIndex((n) => (n as { get(k: string): unknown }).get('name') === v.name);
    if (index < 0) throw new Error(`internal: node ${v.name} is not in cluster.yaml`);
    doc.setIn(
      ['nodes', index, 'ssh'],
      doc.createNode({ host: v.mgmtIp, port: 22, user: 'root', privateKey: keys.clientKey, hostKey: keys.hosts.get(v.name)!.fingerprint }),
    );
  });
  doc.setIn(['binaries'], doc.createNode({ dir: binaries.dir, ...(binaries.allowAbsent && { allowAbsent: true }) }));
  if (binaries.smoke) doc.setIn(['versions', 'images', 'smoke'], doc.createNode({ image: binaries.smoke.image, id: binaries.smoke.id }));
  const etcd = binaries.etcd;
  if (etcd) doc.setIn(['versions', 'etcd'], doc.createNode({ version: etcd.upstream, archive: { url: etcd.url, checksum: `sha256:${etcd.sha256}` } }));
}

async function buildVmNetwork(runner: Runner, t: LabTopology, layout: VmLayout): Promise<void> {
  await ipBatch(runner, undefined, [`netns add ${t.wire.ns}`, `netns add ${t.upstream.ns}`]);
  await ipBatch(runner, t.wire.ns, vmWireBatch(t, layout));
  await ipBatch(runner, t.upstream.ns, upstreamBatch(t));
}

const seconds = (x: number) => `${x.toFixed(1)} s`;
