// End to end with Vagrant for real (npm run test:vagrant; CI runs it): the Vagrantfile's
// triggers, file and shell provisioners and `vagrant provision <node>` against real machines.
// vagrant-libvirt drives a libvirtd of the test's own (test/vagrant/sandbox.ts: its own
// network and mount namespaces, software emulation), with kube-ipsec's box built from Debian
// packages (npm run box). In order:
//   1. `vagrant up --provision` of a master and two minions from a cluster.yaml whose
//      binaries.dir holds what npm run binaries built; the mesh converges; Kubernetes comes up
//      (every minion Ready, CoreDNS available); `kube-ipsec smoke` passes from the host with
//      0 clear-text pod packets on the underlay over the whole run; seed 002's demo works
//      (nine replicas over the minions, each answering curl from every node, a NodePort on
//      every minion address that rotates across the pods) and stays running;
//   2. `kube-ipsec check` against the Vagrant VMs, beside the real kube-proxy's chains: every
//      check that applies passes, and fail-closed (destructive, so named) too;
//   3. ipsec.dpdDelay edited, `vagrant provision minion2`: only minion2 changes, strongSwan
//      reloads without restarting, the kubelet keeps running, minion2's pods keep their
//      containers, the other VMs are not touched, and only the tree is sent again (not the
//      plugin or the archives the node holds);
//   4. `vagrant halt minion1 && vagrant up minion1`: its node goes NotReady and comes back
//      Ready, its tunnels and its pods come back, with 0 clear-text pod packets on the
//      underlay (the private network's bridge) meanwhile;
//   5. `vagrant destroy -f`: no domain, volume, network, process, namespace or file outside
//      the test's directory is left, and the root namespace never saw any of it.
// KUBE_IPSEC_KEEP=1 keeps a failed run's sandbox for inspection (its path is printed);
// KUBE_IPSEC_LOGS=DIR copies the run's logs (every vagrant command, stamped; the capture) there.
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyCapture } from '../../src/check/capture.ts';
import type { Cleanup } from '../../src/check/cluster.ts';
import type { CheckReport } from '../../src/check/report.ts';
import { loadClusterFile } from '../../src/config/load.ts';
import { ensureImage } from '../../src/lab/vm/image.ts';
import { builtBinaries, waitForKubernetes } from '../../src/lab/vm/live.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { processRunner, waitFor } from '../../src/run.ts';
import { shellQuote } from '../../src/shell.ts';
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
  await cluster.writeConfig({ kubernetes: true });
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

/** tcpdump on the private network's bridge (the underlay) until stop(), which classifies what it saw. */
async function underlayCapture(name: string): Promise<{ stop(): Promise<ReturnType<typeof classifyCapture>> }> {
  const bridge = /^Bridge:\s+(\S+)$/m.exec(await sb!.virsh('net-info', UNDERLAY_NETWORK))?.[1];
  expect(bridge, `bridge of libvirt network ${UNDERLAY_NETWORK}`).toBeDefined();
  const file = p('logs', `underlay-${name}.txt`);
  const tcpdump = sb!.spawnTo(['tcpdump', '-i', bridge!, '-nn', '-t', '-l', '--immediate-mode'], file);
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 1000));
      process.kill(tcpdump, 'SIGINT');
      await waitFor(async () => !existsSync(`/proc/${tcpdump}`) || readFileSync(`/proc/${tcpdump}/stat`, 'utf8').includes(') Z '), 10_000);
      const lines = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l && !/^(tcpdump|listening on|\d+ packets)/.test(l));
      return classifyCapture(lines, POD_CIDR);
    },
  };
}

/** What the underlay carried `during` a step: pod traffic as ESP only, never in clear. */
function expectOnlyEsp(during: string, seen: ReturnType<typeof classifyCapture>): void {
  console.log(`underlay ${during}: ${seen.total} packets, ${seen.esp} ESP, ${seen.ike} IKE, ${seen.clearPod.length} clear-text pod packets`);
  expect(seen.clearPod).toEqual([]);
  expect(seen.esp).toBeGreaterThan(0);
}

interface PodList {
  items: {
    metadata: { name: string; uid: string };
    spec: { nodeName?: string };
    status: { phase?: string; podIP?: string; containerStatuses?: { containerID?: string; ready: boolean; restartCount: number }[] };
  }[];
}
const MINION_NAMES = NODES.slice(1).map((n) => n.name);
const DEMO = 'demo';

const demoPods = async () => JSON.parse(await cluster.kubectlOut(['get', 'pods', '-l', `app=${DEMO}`, '-o', 'json'])) as PodList;
const podNames = (pods: PodList['items']) => pods.map((x) => x.metadata.name).sort();
const runningReady = (pod: PodList['items'][number]) => pod.status.phase === 'Running' && (pod.status.containerStatuses ?? []).every((c) => c.ready);
/** The Ready condition of a node as the API server has it: 'True', 'False' or 'Unknown'. */
const nodeReady = async (name: string) =>
  (await cluster.kubectl(['get', 'node', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], true)).stdout.trim();

/** From `node`, an HTTP GET of each address in one ssh session: the answers, in order. */
async function curlFrom(node: string, urls: string[]): Promise<string[]> {
  const script = urls.map((u) => `curl -sS -m 10 ${shellQuote(u)} || echo "FAILED ${u}"; echo`).join('; ');
  return (await onNode(node, script, true)).stdout.split('\n').filter(Boolean);
}

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
    '1b. Kubernetes runs: every minion Ready, CoreDNS available, kube-ipsec smoke passes from the host, no pod packet in clear meanwhile',
    async () => {
      const plan = planCluster(loadClusterFile(p('cluster.yaml')));
      const since = performance.now();
      const ready = await waitForKubernetes(
        sb!.runner,
        (argv) => cluster.sshArgv('master', argv.map(shellQuote).join(' ')),
        plan,
        (l) => console.log(l),
      );
      console.log(
        `Kubernetes after the tunnels: minions Ready ${seconds(ready.nodesReady)}, CoreDNS ${seconds(ready.dnsReady)} (waited ${seconds((performance.now() - since) / 1000)})`,
      );
      // The built release's kubectl, from its node archive, as a user's laptop would have it.
      const kubectl = p('kubectl');
      await sb!.run([
        'tar',
        '-xzf',
        `${builtBinaries()!.dir}/kubernetes-node-linux-amd64.tar.gz`,
        '-C',
        p(),
        '--strip-components=3',
        'kubernetes/node/bin/kubectl',
      ]);
      const capture = await underlayCapture('smoke');
      const r = await sb!.run(
        [process.execPath, `${repoRoot}/bin/kube-ipsec`, 'smoke', '--config', p('cluster.yaml'), '--out', p('out'), '--kubectl', kubectl, '--timeout', '600'],
        {
          cwd: repoRoot,
          vars: cluster.vars(),
          allowFail: true,
          timeoutMs: 20 * 60_000,
        },
      );
      const seen = await capture.stop();
      writeFileSync(p('logs', 'smoke.txt'), `${r.stdout}\n${r.stderr}`);
      console.log(r.stdout);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expectOnlyEsp('over the smoke run', seen);
    },
    30 * 60_000,
  );

  step(
    "1c. seed 002's demo: nine replicas over the minions, each answering curl from every node, and a NodePort on every minion that rotates",
    async () => {
      const plan = planCluster(loadClusterFile(p('cluster.yaml')));
      // agnhost's serve-hostname answers with the pod's name, as the bootcamp image of the seed did.
      await cluster.kubectlOut([
        'create',
        'deployment',
        DEMO,
        `--image=${plan.images.smoke.ref}`,
        '--replicas=9',
        '--port=8080',
        '--',
        '/agnhost',
        'serve-hostname',
        '--http=true',
        '--udp=false',
        '--port=8080',
      ]);
      await cluster.kubectlOut(['rollout', 'status', `deployment/${DEMO}`, '--timeout=900s'], 960_000);
      const pods = (await demoPods()).items;
      expect(pods).toHaveLength(9);
      expect(new Set(pods.map((x) => x.spec.nodeName))).toEqual(new Set(MINION_NAMES));
      const names = pods.map((x) => x.metadata.name);
      for (const n of NODES) {
        const answers = await curlFrom(
          n.name,
          pods.map((x) => `http://${x.status.podIP}:8080`),
        );
        expect(answers, `${n.name} → every pod`).toEqual(names);
      }
      await cluster.kubectlOut(['expose', 'deployment', DEMO, '--type=NodePort', '--port=8080']);
      const port = (JSON.parse(await cluster.kubectlOut(['get', 'service', DEMO, '-o', 'json'])) as { spec: { ports: { nodePort: number }[] } }).spec.ports[0]!
        .nodePort;
      for (const m of NODES.slice(1)) {
        const answers = await curlFrom(
          'master',
          Array.from({ length: 20 }, () => `http://${m.ip}:${port}`),
        );
        expect(answers).toHaveLength(20);
        for (const a of answers) expect(names, `NodePort ${m.ip}:${port} answered`).toContain(a);
        console.log(`demo: NodePort ${m.ip}:${port} answered by ${new Set(answers).size} of 9 pods in 20 requests`);
        expect(new Set(answers).size).toBeGreaterThan(1);
      }
      console.log(
        `demo: 9 pods on ${[...new Set(pods.map((x) => x.spec.nodeName))].sort().join(', ')}, each answering from ${NODES.map((n) => n.name).join(', ')}`,
      );
    },
    30 * 60_000,
  );

  // The security model on the live cluster (docs/security.md): what the render promises holds
  // against the running API server and etcd.
  step(
    '1d. keeps its trust domains live: Secrets encrypted in etcd, etcd closed to minions, an IKE certificate refused by the API server, an audit log',
    async () => {
      const secret = `kvg-${sb!.prefix}`;
      const etcdctl = `/usr/local/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${PATHS.etcdCaCert} --cert=${PATHS.etcdHealthcheckClientCert} --key=${PATHS.etcdHealthcheckClientKey}`;
      await cluster.kubectlOut(['create', 'secret', 'generic', secret, '-n', 'default', `--from-literal=k=plain-${secret}`]);
      try {
        // What etcd holds: secretbox ciphertext, never the value.
        const stored = await onNode(
          'master',
          `${etcdctl} get /registry/secrets/default/${secret} --print-value-only > /run/${secret}; head -c 21 /run/${secret}; echo; grep -c plain-${secret} /run/${secret}; rm -f /run/${secret}`,
          true,
        );
        expect(stored.stdout.trim().split('\n')).toEqual(['k8s:enc:secretbox:v1:', '0']);
        // etcd listens on the master's loopback only: a minion cannot even connect.
        const etcdPort = await onNode('minion1', `timeout 5 bash -c '</dev/tcp/${NODES[0]!.ip}/2379' 2>/dev/null && echo open || echo closed`, true);
        expect(etcdPort.stdout.trim()).toBe('closed');
        // A minion's IKE certificate is from the IKE CA, which the API server does not trust.
        const ike = await onNode(
          'minion1',
          `curl -s -o /dev/null -w '%{http_code}' --cacert ${PATHS.caCert} --cert ${PATHS.ipsecCertDir}/minion1.pem --key ${PATHS.ipsecKeyDir}/minion1.key https://${NODES[0]!.ip}:6443/api/v1/secrets`,
          true,
        );
        expect(['000', '401', '403']).toContain(ike.stdout.trim());
        // Who did what: the audit log records the request that made the Secret.
        const audited = await onNode('master', `grep -c '"resource":"secrets"' ${PATHS.auditLog}`, true);
        expect(Number(audited.stdout.trim())).toBeGreaterThan(0);
      } finally {
        await cluster.kubectl(['delete', 'secret', secret, '-n', 'default', '--ignore-not-found'], true);
      }
    },
    10 * 60_000,
  );

  step(
    "2. kube-ipsec check passes every check that applies to the Vagrant VMs, beside kube-proxy's chains, and fail-closed when named",
    async () => {
      // The real kube-proxy's rules are there, next to kube-ipsec's table.
      for (const m of MINION_NAMES) {
        const rules = await onNode(
          m,
          'iptables -t nat -S KUBE-SERVICES | grep -c -- "-j KUBE-SVC-"; nft list table ip kube-ipsec >/dev/null && echo kube-ipsec',
          true,
        );
        const [services, table] = rules.stdout.trim().split('\n');
        expect(Number(services), `${m}: kube-proxy's KUBE-SERVICES rules`).toBeGreaterThan(0);
        expect(table, `${m}: kube-ipsec's nftables table`).toBe('kube-ipsec');
      }
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
      // What a user runs right after `vagrant up`: every check that leaves the cluster as it is,
      // beside the cluster's own pods (the demo's, CoreDNS), whose IPAM entries it must not touch.
      const stores = async () => Promise.all(MINION_NAMES.map(async (m) => (await onNode(m, `cat ${PATHS.cniDataDir}/kube-ipsec.json`)).stdout));
      const storesBefore = await stores();
      const all = (await check('all', [])) as CheckReport & { cluster: { cleanup: Cleanup } };
      expect(all.cluster.cleanup).toMatchObject({ podsDeleted: all.cluster.cleanup.pods, problems: [] });
      expect(
        all.cluster.cleanup.stores.every((x) => x.asFound),
        JSON.stringify(all.cluster.cleanup.stores),
      ).toBe(true);
      expect(await stores()).toEqual(storesBefore);
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
      const kubeletPid = async () => (await onNode('minion2', 'systemctl show -p MainPID --value kubelet')).stdout.trim();
      const kubeletBefore = await kubeletPid();
      const containersOnMinion2 = async () =>
        (await demoPods()).items
          .filter((x) => x.spec.nodeName === 'minion2')
          .map((x) => `${x.metadata.name} ${x.status.containerStatuses?.map((c) => `${c.containerID} restarts=${c.restartCount}`).join(',')}`)
          .sort();
      const podsBefore = await containersOnMinion2();
      expect(podsBefore.length, 'demo pods on minion2').toBeGreaterThan(0);
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
      // Only the tree travels again: the plugin and the archives minion2 installed last time are
      // on the node byte for byte, so they are copied there instead of sent (vagrant/upload.rb).
      const upload = '/var/tmp/kube-ipsec-upload';
      const summary = JSON.parse(readFileSync(p('out', 'cluster.json'), 'utf8')) as { nodes: { name: string; binaries: { file: string }[] }[] };
      const held = ['ipsec-cni', ...summary.nodes.find((n) => n.name === 'minion2')!.binaries.map((b) => `binaries/${b.file}`)];
      expect(text).toContain(` => ${upload}/files.tar`);
      for (const f of held) expect(text, f).toContain(`minion2: ${upload}/${f}: the node holds it`);
      expect(text).not.toMatch(new RegExp(` => ${upload}/(ipsec-cni|binaries/)`));

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
      // Its own files unchanged, the kubelet is not restarted, and minion2's pods keep their containers.
      expect(text).not.toMatch(/minion2: restart kubelet\.service/);
      expect(await kubeletPid(), 'kubelet of minion2 kept running').toBe(kubeletBefore);
      expect(await containersOnMinion2()).toEqual(podsBefore);
    },
    20 * 60_000,
  );

  step(
    '4. vagrant halt minion1 && vagrant up minion1: NotReady, then Ready with its tunnels and pods back, 0 clear-text pod packets meanwhile',
    async () => {
      const capture = await underlayCapture('halt-up');
      let seen: Awaited<ReturnType<typeof capture.stop>>;
      // Pod-range traffic towards minion1 the whole time: from master's and minion2's pod gateways.
      const pingers = ['master', 'minion2'];
      for (const n of pingers)
        await onNode(n, `nohup timeout 900 ping -i 0.5 ${NODES[1]!.podGateway} </dev/null >/run/kvg-ping.log 2>&1 & echo $! >/run/kvg-ping.pid`);
      const podsBefore = (await demoPods()).items.filter((x) => x.spec.nodeName === 'minion1');
      expect(podsBefore.length, 'demo pods on minion1').toBeGreaterThan(0);
      try {
        await new Promise((r) => setTimeout(r, 3000));
        const halt = await vagrant(['halt', 'minion1']);
        expect(halt.code, halt.tail).toBe(0);
        expect((await sb!.virsh('domstate', 'kube-ipsec-minion1')).trim()).toBe('shut off');
        // The control plane notices (the node lease expires: node-monitor-grace-period).
        expect(await waitFor(async () => (await nodeReady('minion1')) !== 'True', 300_000, 5000), 'minion1 goes NotReady').toBe(true);
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
        // Ready again, and the pods bound to it run again (the kubelet restarts their sandboxes through ipsec-cni).
        expect(await waitFor(async () => (await nodeReady('minion1')) === 'True', 600_000, 5000), 'minion1 Ready again').toBe(true);
        const ready = (performance.now() - since) / 1000;
        // The same pods (bound to minion1 before the halt; evicted only 300 s after NotReady).
        const onMinion1 = async () => (await demoPods()).items.filter((x) => x.spec.nodeName === 'minion1');
        const back = async () => {
          const pods = await onMinion1().catch(() => []);
          return podNames(pods).join() === podNames(podsBefore).join() && pods.every(runningReady);
        };
        expect(await waitFor(back, 600_000, 5000), "minion1's demo pods Running and ready again").toBe(true);
        const pods = await onMinion1();
        expect(
          await curlFrom(
            'master',
            pods.map((x) => `http://${x.status.podIP}:8080`),
          ),
        ).toEqual(pods.map((x) => x.metadata.name));
        console.log(
          `vagrant halt minion1: ${seconds(halt.seconds)}, vagrant up minion1: ${seconds(up.seconds)}; after up returned: its tunnels up ${seconds(tunnels)}, Ready ${seconds(ready)}, its ${pods.length} demo pods answering ${seconds((performance.now() - since) / 1000)}`,
        );
      } finally {
        for (const n of pingers) await onNode(n, 'kill "$(cat /run/kvg-ping.pid)"', true);
        seen = await capture.stop();
      }
      expectOnlyEsp('through halt and up', seen);
    },
    35 * 60_000,
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
