// A real CNI client: Debian's podman 4.3 with its CNI backend (libcni) starts two containers
// on an ipsec-cni network. podman itself runs inside the node namespace (nsenter --net, so
// its mounts and cgroups stay as they are), hence every CNI call, and the bridge, happen
// there; private config and storage under a temp dir (recipe: shared LAB.md).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertPluginBuilt, cniFixture, links, readStore, type CniFixture } from '../helpers/cni.ts';
import { run } from '../helpers/netns.ts';

let fx: CniFixture;
let rootLinksBefore: string[];
let net: string;
let image: string;
const containers: string[] = [];
const sandboxes: string[] = [];

function podmanEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: fx.dir,
    CONTAINERS_CONF: join(fx.dir, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(fx.dir, 'storage.conf'),
    TMPDIR: join(fx.dir, 'tmp'),
    // podman's environment reaches the plugin: its VERSION calls (no config) log here
    IPSEC_CNI_LOG: join(fx.dir, 'cni-noconfig.log'),
  };
}

function podman(args: string[], allowFail = false) {
  return run(['nsenter', `--net=${fx.lab.path(fx.node)}`, 'podman', ...args], { env: podmanEnv(), allowFail, timeoutMs: 60_000 });
}

beforeAll(async () => {
  rootLinksBefore = await links('');
  fx = await cniFixture('cnio');
  net = `${fx.lab.prefix}net`;
  image = `localhost/${fx.lab.prefix}busybox:1`;
  const d = fx.dir;
  for (const sub of ['plugins', 'net.d', 'tmp', 'rootfs/bin', 'ipam']) mkdirSync(join(d, sub), { recursive: true });
  copyFileSync(assertPluginBuilt(), join(d, 'plugins', 'ipsec-cni'));
  // A busybox-static rootfs, imported as an image: no registry needed.
  copyFileSync('/usr/bin/busybox', join(d, 'rootfs/bin/busybox'));
  for (const c of ['sh', 'sleep', 'ping']) symlinkSync('busybox', join(d, 'rootfs/bin', c));
  await run(['tar', '-C', join(d, 'rootfs'), '-cf', join(d, 'rootfs.tar'), '.']);
  writeFileSync(
    join(d, 'containers.conf'),
    [
      '[containers]',
      'cgroupns = "host"',
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${d}/events.log"`,
      'runtime = "runc"',
      `tmp_dir = "${d}/tmp"`,
      // conmon starts `podman container cleanup` with this environment; its calls reach the plugin
      `env = ["IPSEC_CNI_LOG=${d}/cni-noconfig.log"]`,
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${d}/plugins", "/usr/lib/cni"]`,
      `network_config_dir = "${d}/net.d"`,
      `default_network = "${net}"`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(d, 'storage.conf'), `[storage]\ndriver = "overlay"\nrunroot = "${d}/runroot"\ngraphroot = "${d}/root"\n`);
  // podman 4.3's libcni speaks up to spec 1.0.0
  writeFileSync(
    join(d, 'net.d', `${net}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: net,
      plugins: [{ type: 'ipsec-cni', bridge: 'br-podman', subnet: '10.246.1.0/24', mtu: 1400, dataDir: join(d, 'ipam'), logFile: join(d, 'cni.log') }],
    }),
  );
  await podman(['import', join(d, 'rootfs.tar'), image]);
}, 120_000);

afterAll(async () => {
  if (fx) {
    await podman(['rm', '-f', '-t', '0', ...containers], true);
    await podman(['system', 'reset', '-f'], true);
    // podman removes its netns on rm; remove any left by a failed run (we recorded them)
    for (const s of sandboxes) if (existsSync(s)) await run(['ip', 'netns', 'del', s.split('/').pop()!], { allowFail: true });
    await fx.cleanup();
  }
  expect((await links('')).filter((l) => !rootLinksBefore.includes(l))).toEqual([]);
}, 120_000);

it('podman starts two containers on ipsec-cni: distinct IPs, they ping each other and the gateway, rm releases both', async () => {
  const ips: string[] = [];
  for (const n of ['c1', 'c2']) {
    const name = `${fx.lab.prefix}${n}`;
    containers.push(name);
    await podman(['run', '-d', '--name', name, '--network', net, '--cap-add', 'NET_RAW', image, '/bin/sleep', '300']);
    const inspect = JSON.parse((await podman(['inspect', name])).stdout)[0];
    sandboxes.push(inspect.NetworkSettings.SandboxKey);
    ips.push(inspect.NetworkSettings.Networks[net].IPAddress);
  }
  expect(new Set(ips).size).toBe(2);
  for (const ip of ips) expect(ip).toMatch(/^10\.246\.1\.(\d+)$/);
  expect(ips).not.toContain('10.246.1.1');

  const store = readStore(join(fx.dir, 'ipam'), net).allocations as Record<string, any>;
  expect(Object.keys(store).sort()).toEqual([...ips].sort());
  expect(
    Object.values(store)
      .map((a) => a.podName)
      .sort(),
  ).toEqual(containers.slice().sort()); // from CNI_ARGS

  const ping = await podman(['exec', containers[0]!, 'ping', '-c1', '-W2', ips[1]!]);
  expect(ping.stdout).toMatch(/1 packets received/);
  expect((await podman(['exec', containers[1]!, 'ping', '-c1', '-W2', '10.246.1.1'])).stdout).toMatch(/1 packets received/);

  // The bridge and the host veths are in the node namespace.
  const nodeLinks = await links(fx.node);
  expect(nodeLinks).toContain('br-podman');
  expect(nodeLinks.filter((l) => l.startsWith('veth'))).toHaveLength(2);
  expect(await links('')).not.toContain('br-podman');

  await podman(['rm', '-f', '-t', '0', ...containers]);
  expect(readStore(join(fx.dir, 'ipam'), net).allocations).toEqual({});
  expect((await links(fx.node)).filter((l) => l.startsWith('veth'))).toEqual([]);
  const log = readFileSync(join(fx.dir, 'cni.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(log.filter((l) => l.cmd === 'ADD' && l.ok)).toHaveLength(2);
  expect(log.filter((l) => l.cmd === 'DEL' && l.ok).length).toBeGreaterThanOrEqual(2);
}, 120_000);
