// End to end with Vagrant for real (npm run test:vagrant; CI runs it): the Vagrantfile's
// triggers, file and shell provisioners and `vagrant provision <node>` against real machines.
// vagrant-libvirt drives a libvirtd of the test's own (test/vagrant/sandbox.ts: its own
// network and mount namespaces, software emulation), with kube-ipsec's box built from Debian
// packages (npm run box). In order:
//   1. `vagrant up --provision` of a master and two minions from a cluster.yaml with an
//      air-gapped binaries dir (allowAbsent), as in the VM lab; the mesh converges;
//   2. `kube-ipsec check` against the Vagrant VMs: every check that applies passes, and
//      fail-closed (destructive, so named) too;
//   3. ipsec.dpdDelay edited, `vagrant provision minion2`: only minion2 changes, strongSwan
//      reloads without restarting, the other VMs are not touched;
//   4. `vagrant halt minion1 && vagrant up minion1`: minion1's tunnels come back, with 0
//      clear-text pod packets on the underlay (the private network's bridge) meanwhile;
//   5. `vagrant destroy -f`: no domain, volume, network, process, namespace or file outside
//      the test's directory is left, and the root namespace never saw any of it.
// KUBE_IPSEC_KEEP=1 keeps a failed run's sandbox for inspection (its path is printed);
// KUBE_IPSEC_LOGS=DIR copies the run's logs (every vagrant command, stamped; the capture) there.
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyCapture } from '../../src/check/capture.ts';
import type { CheckReport } from '../../src/check/report.ts';
import { ensureImage } from '../../src/lab/vm/image.ts';
import { processRunner, waitFor } from '../../src/run.ts';
import { ensureBox } from '../../src/vagrant/box.ts';
import { LOCAL_BOX } from '../../src/vagrant/providers.ts';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { repoRoot } from '../helpers/cluster.ts';
import { NODES, POD_CIDR, UNDERLAY_NETWORK, VagrantCluster } from './cluster.ts';
import { hostChanges, hostSnapshot, type HostSnapshot } from './host.ts';
import { machinePhases } from './phases.ts';
import { LibvirtSandbox, mountedBelow } from './sandbox.ts';

let sb: LibvirtSandbox | undefined;
let cluster: VagrantCluster;
let before: HostSnapshot;
let failed = false;
const p = (...parts: string[]) => cluster.path(...parts);
const seconds = (x: number) => `${x.toFixed(0)} s`;
const vagrant = (args: string[]) => cluster.vagrant(args);
const onNode = (node: string, script: string, allowFail = false) => cluster.onNode(node, script, allowFail);
const tunnelsOf = (node: string) => cluster.tunnelsOf(node);

function saveLogs(): void {
  if (process.env.KUBE_IPSEC_LOGS && sb) cpSync(p('logs'), process.env.KUBE_IPSEC_LOGS, { recursive: true });
}

beforeAll(async () => {
  assertPluginBuilt();
  before = await hostSnapshot();
  // The node image and box are built outside the sandbox (debootstrap needs the mirror); cached by recipe.
  const image = await ensureImage({ runner: processRunner, log: (l) => console.log(`image: ${l}`) });
  sb = await LibvirtSandbox.start('kvg');
  cluster = new VagrantCluster(sb);
  console.log(`libvirt sandbox ${sb.prefix}: ${sb.dir} (namespace ${sb.ns})`);
  const box = await ensureBox({ runner: sb.runner, vagrantHome: sb.env().VAGRANT_HOME! });
  console.log(`box ${LOCAL_BOX}: recipe ${image.key}, ${box.action}${box.addSeconds ? ` in ${box.addSeconds.toFixed(1)} s` : ''}`);
  await cluster.writeConfig();
}, 40 * 60_000);

afterAll(async () => {
  if (!sb) return;
  saveLogs();
  if (failed && process.env.KUBE_IPSEC_KEEP === '1') {
    console.log(`KUBE_IPSEC_KEEP=1: the sandbox stays for inspection: ${sb.dir} (holder ${sb.holder}, namespace ${sb.ns})`);
    return;
  }
  await sb.stop();
}, 5 * 60_000);

/** Marks the run failed (for KUBE_IPSEC_KEEP) when `body` throws. */
const step = (name: string, body: () => Promise<void>, timeoutMs: number) =>
  it(
    name,
    async () => {
      try {
        await body();
      } catch (err) {
        failed = true;
        throw err;
      }
    },
    timeoutMs,
  );

describe.sequential('vagrant up --provision with vagrant-libvirt under software emulation', () => {
  step(
    '1. brings up a master and two minions, provisioned, inside the sandbox only',
    async () => {
      const up = await vagrant(['up', '--provision', '--provider', 'libvirt']);
      expect(up.code, up.tail).toBe(0);
      const text = up.lines.map((l) => l.line).join('\n');
      expect(text).toContain(`kube-ipsec: libvirt driver`);
      for (const n of NODES) {
        expect(text, n.name).toMatch(new RegExp(`${n.name}: Running provisioner: kube-ipsec \\(shell\\)`));
        expect(text, n.name).not.toMatch(new RegExp(`${n.name}: .*error:`));
      }
      expect((await sb!.virsh('list', '--name')).trim().split('\n').sort()).toEqual(NODES.map((n) => `kube-ipsec-${n.name}`));
      for (const ph of machinePhases(up.lines)) {
        console.log(
          `vagrant up ${ph.machine}: box import ${ph.boxImport?.toFixed(1) ?? '-'} s, boot ${ph.boot?.toFixed(0)} s, configure ${ph.configure?.toFixed(0)} s, provisioning ${ph.provisioning?.toFixed(0)} s`,
        );
      }

      await cluster.sshConfig();
      // Where a first boot of the box goes under software emulation (for docs/benchmarks.md).
      console.log(`master's first boot:\n${(await onNode('master', 'systemd-analyze; systemd-analyze blame | head -8', true)).stdout}`);
      const started = performance.now();
      expect(await waitFor(() => cluster.everyPairUp(), 180_000, 2000), 'every pair of nodes has its tunnel').toBe(true);
      console.log(`vagrant up --provision: ${seconds(up.seconds)}, then every tunnel up within ${seconds((performance.now() - started) / 1000)}`);

      // Everything libvirt made is in the sandbox: bridges, taps and dnsmasq there, nothing here.
      expect(hostChanges(before, await hostSnapshot())).toEqual([]);
      const links = (await sb!.run(['ip', '-o', 'link', 'show'])).stdout;
      expect(links).toMatch(/virbr\d+/);
      expect(links.match(/vnet\d+/g)?.length).toBe(2 * NODES.length);
      const comms = sb!.processes().map((x) => x.comm);
      expect(comms.filter((c) => c === 'qemu-system-x86')).toHaveLength(NODES.length);
      expect(comms).toContain('dnsmasq');
    },
    45 * 60_000,
  );

  step(
    '2. kube-ipsec check passes every check that applies to the Vagrant VMs, and fail-closed when named',
    async () => {
      const check = async (name: string, args: string[]): Promise<CheckReport> => {
        const r = await sb!.run(
          [
            'npm',
            'run',
            '--silent',
            'check',
            '--',
            '--config',
            p('cluster.yaml'),
            '--out',
            p('out'),
            '--state',
            p('state'),
            '--json',
            '--accept-new-host-keys',
            ...args,
          ],
          {
            cwd: repoRoot,
            vars: cluster.vars(),
            allowFail: true,
            timeoutMs: 20 * 60_000,
          },
        );
        writeFileSync(p('logs', `check-${name}.json`), r.stdout);
        let report: CheckReport;
        try {
          report = JSON.parse(r.stdout) as CheckReport;
        } catch {
          throw new Error(`kube-ipsec check ${args.join(' ')} printed no report (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
        }
        const applied = report.results.filter((x) => !x.skipped);
        expect(applied.filter((x) => !x.ok).map((x) => `${x.name}: ${x.problems.join('; ')}`)).toEqual([]);
        expect(report.ok).toBe(true);
        expect(r.code, r.stderr).toBe(0);
        return report;
      };
      // What a user runs right after `vagrant up`: every check that leaves the cluster as it is.
      const all = await check('all', []);
      expect(all.results.filter((x) => !x.skipped).map((x) => x.name)).toEqual(
        expect.arrayContaining(['tunnels', 'pings', 'capture', 'mtu', 'kernel-esp', 'units']),
      );
      for (const x of all.results.filter((y) => y.skipped)) console.log(`check ${x.name}: not applicable: ${x.skipped}`);
      // And the promise when a node's strongSwan is down (a destructive check: only when named).
      const fc = (await check('fail-closed', ['--only', 'fail-closed', '--victim', 'minion1'])).results.find((x) => x.name === 'fail-closed')!;
      expect(fc.values?.clearPod).toBe(0);
      console.log(`check fail-closed: ${fc.summary}`);
    },
    25 * 60_000,
  );

  step(
    '3. after an edit of ipsec.dpdDelay, vagrant provision minion2 changes minion2 only and reloads its strongSwan',
    async () => {
      const watch = 'find /etc /usr/local /opt /var/lib/kube-ipsec -xdev -newer /run/kvg-mark -type f 2>/dev/null | sort';
      const charon = 'cat /run/charon.pid';
      const snapshot = async () =>
        Object.fromEntries(
          await Promise.all(
            NODES.map(async (n) => [n.name, (await onNode(n.name, `touch /run/kvg-mark; ${charon}; sha256sum /etc/ipsec.conf`)).stdout] as const),
          ),
        );
      const beforeProvision = await snapshot();
      await new Promise((r) => setTimeout(r, 1100)); // mtimes have one-second resolution in find -newer's eyes on some file systems
      writeFileSync(p('cluster.yaml'), readFileSync(p('cluster.yaml'), 'utf8').replace('dpdDelay: 5s', 'dpdDelay: 7s'));

      const r = await vagrant(['provision', 'minion2']);
      expect(r.code, r.tail).toBe(0);
      const text = r.lines.map((l) => l.line).join('\n');
      expect(text).toMatch(/minion2: install \/etc\/ipsec\.conf/);
      expect(text).toMatch(/minion2: reload strongswan-starter\.service/);
      expect(text).not.toMatch(/minion2: restart strongswan-starter\.service/);
      expect(text).not.toMatch(/==> (master|minion1):/);
      console.log(`vagrant provision minion2 (one changed value): ${seconds(r.seconds)}`);

      const m2 = await onNode('minion2', `${charon}; grep -o 'dpddelay=[0-9a-z]*' /etc/ipsec.conf | sort -u | paste -sd,; ${watch}`);
      const [pid, dpd, ...changed] = m2.stdout.trim().split('\n');
      expect(pid, 'charon of minion2 kept running (reload, not restart)').toBe(beforeProvision.minion2!.split('\n')[0]);
      expect(dpd).toBe('dpddelay=7s');
      expect(changed).toContain('/etc/ipsec.conf');
      for (const n of NODES.filter((x) => x.name !== 'minion2')) {
        const o = await onNode(n.name, `${charon}; sha256sum /etc/ipsec.conf; echo ---; ${watch}`);
        const [state, touched] = o.stdout.split('---\n');
        expect(state, `${n.name}: charon and /etc/ipsec.conf unchanged`).toBe(beforeProvision[n.name]);
        expect(touched!.trim(), `${n.name}: files changed since vagrant provision minion2 began`).toBe('');
      }
      expect(await waitFor(async () => (await tunnelsOf('minion2')).length === 2, 60_000, 2000), 'minion2 keeps its tunnels').toBe(true);
    },
    20 * 60_000,
  );

  step(
    '4. vagrant halt minion1 && vagrant up minion1: its tunnels come back, 0 clear-text pod packets meanwhile',
    async () => {
      const bridge = /^Bridge:\s+(\S+)$/m.exec(await sb!.virsh('net-info', UNDERLAY_NETWORK))?.[1];
      expect(bridge, `bridge of libvirt network ${UNDERLAY_NETWORK}`).toBeDefined();
      const captureFile = p('logs', 'underlay.txt');
      const tcpdump = sb!.spawnTo(['tcpdump', '-i', bridge!, '-nn', '-t', '-l', '--immediate-mode'], captureFile);
      // Pod-range traffic towards minion1 the whole time: from master's and minion2's pod gateways.
      const pingers = ['master', 'minion2'];
      for (const n of pingers)
        await onNode(n, `nohup timeout 900 ping -i 0.5 ${NODES[1]!.podGateway} </dev/null >/run/kvg-ping.log 2>&1 & echo $! >/run/kvg-ping.pid`);
      try {
        await new Promise((r) => setTimeout(r, 3000));
        const halt = await vagrant(['halt', 'minion1']);
        expect(halt.code, halt.tail).toBe(0);
        expect((await sb!.virsh('domstate', 'kube-ipsec-minion1')).trim()).toBe('shut off');
        const up = await vagrant(['up', 'minion1']);
        expect(up.code, up.tail).toBe(0);
        expect(up.lines.map((l) => l.line).join('\n')).not.toContain('Running provisioner');
        const since = performance.now();
        expect(await waitFor(async () => (await tunnelsOf('minion1')).length === 2, 180_000, 2000), "minion1's tunnels are back").toBe(true);
        const tunnels = (performance.now() - since) / 1000;
        for (const n of pingers) {
          expect(
            await waitFor(async () => (await onNode(n, `ping -c 1 -W 2 ${NODES[1]!.podGateway}`, true)).code === 0, 60_000, 1000),
            `${n} reaches minion1's pods again`,
          ).toBe(true);
        }
        console.log(
          `vagrant halt minion1: ${seconds(halt.seconds)}, vagrant up minion1: ${seconds(up.seconds)}, its tunnels up ${seconds(tunnels)} after up returned`,
        );
      } finally {
        for (const n of pingers) await onNode(n, 'kill "$(cat /run/kvg-ping.pid)"', true);
        await new Promise((r) => setTimeout(r, 1000));
        process.kill(tcpdump, 'SIGINT');
        await waitFor(async () => !existsSync(`/proc/${tcpdump}`) || readFileSync(`/proc/${tcpdump}/stat`, 'utf8').includes(') Z '), 10_000);
      }
      const lines = readFileSync(captureFile, 'utf8')
        .split('\n')
        .filter((l) => l && !/^(tcpdump|listening on|\d+ packets)/.test(l));
      const capture = classifyCapture(lines, POD_CIDR);
      console.log(
        `underlay through halt and up: ${capture.total} packets, ${capture.esp} ESP, ${capture.ike} IKE, ${capture.clearPod.length} clear-text pod packets`,
      );
      expect(capture.clearPod).toEqual([]);
      expect(capture.esp).toBeGreaterThan(0);
    },
    20 * 60_000,
  );

  step(
    '5. vagrant destroy -f leaves no domain, volume, network, process, namespace or file outside the test',
    async () => {
      const r = await vagrant(['destroy', '-f']);
      expect(r.code, r.tail).toBe(0);
      expect((await sb!.virsh('list', '--all', '--name')).trim()).toBe('');
      expect((await sb!.virsh('net-list', '--all', '--name')).trim()).toBe('');
      // vagrant-libvirt keeps the box's base image in the pool for the next `up`; every VM's own volume is gone.
      const volumes = (await sb!.virsh('vol-list', 'default'))
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.trim().split(/\s+/)[0]!);
      expect(volumes.filter((v) => !v.includes('_vagrant_box_image_'))).toEqual([]);
      for (const v of volumes) await sb!.virsh('vol-delete', '--pool', 'default', v);
      expect(readdirSync(p('lib', 'images'))).toEqual([]);
      expect(
        sb!
          .processes()
          .map((x) => x.comm)
          .sort(),
      ).toEqual(['libvirtd', 'sleep', 'virtlogd']);

      const { dir, ns } = sb!;
      saveLogs();
      const extra = await sb!.stop();
      sb = undefined;
      expect(extra, 'processes besides the daemons when the sandbox stopped').toEqual([]);
      expect(existsSync(`/run/netns/${ns}`)).toBe(false);
      expect(mountedBelow(dir)).toBe(false);
      expect(existsSync(dir)).toBe(false);
      expect(hostChanges(before, await hostSnapshot())).toEqual([]);
    },
    10 * 60_000,
  );
});
