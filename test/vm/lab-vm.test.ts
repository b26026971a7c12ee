// End to end on real VMs (npm run test:vm; CI runs it after npm test): `npm run lab -- up --vm`
// boots a master and two minions under qemu from the cached node image (built first if the
// cache has none) and provisions them with `kube-ipsec provision`; `lab check` must pass every
// check — the shared ones (tunnels, pings, capture with raw ESP, sources, masquerade, MTU,
// rekey across the lab's short lifetimes, fail-closed) and the VM ones (kernel ESP, units,
// re-provisioning one minion, rebooting one). Then the same VMs are checked as any
// provisioned cluster is, by `kube-ipsec check` over ssh with the lab's cluster.yaml
// (destructive checks named), which must pass, capture on each node's underlay interface and
// leave every IPAM store byte for byte and nothing of its own behind. `down` must leave no
// process, tap, namespace or overlay behind. Twice: as cluster.yaml comes by default, and with
// ipsec.nodeEncryption (node-to-node traffic through ESP too: the node-traffic check; `lab
// check` only). The commands run as a user runs them; the state file tells the test what to
// look for afterwards.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { down } from '../../src/lab/down.ts';
import { openLab } from '../../src/lab/open.ts';
import type { Cleanup, NodeConnection } from '../../src/check/cluster.ts';
import { CHECK_NAMES, formatReport, type CheckReport } from '../../src/check/report.ts';
import { readNodeFile } from '../../src/check/target.ts';
import { PATHS } from '../../src/plan/paths.ts';
import type { LabStateData } from '../../src/lab/state.ts';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { repoRoot } from '../helpers/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-vm-e2e-'));
// The lab the steps below act on (one describe block at a time: files run sequentially).
let stateDir = '';
let configFile = '';
let prefix = '';
/** Every lab this file brought up: afterAll brings each down, whichever step failed. */
const stateDirs: string[] = [];

afterAll(async () => {
  // Whatever happened above, nothing of any lab stays (down is idempotent).
  for (const d of stateDirs) await down(d).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}, 300_000);

// Sized for a 2-core host under software emulation: the control plane gets both CPUs (its
// API server alone uses 310 MB there), each minion one.
const NODES =
  'nodes:\n  - { name: master, role: master, ip: 192.168.10.10, memory: 2048, cpus: 2 }\n  - { name: minion1, ip: 192.168.10.21, memory: 1536, cpus: 1 }\n  - { name: minion2, ip: 192.168.10.22, memory: 1536, cpus: 1 }\n';

/** The kubectl of the built release (npm run binaries), from its node archive, for smoke from the lab's upstream. */
function builtKubectl(): string {
  const archive = join(repoRoot, 'binaries', 'kubernetes-node-linux-amd64.tar.gz');
  expect(existsSync(archive), `${archive}: npm run test:vm runs npm run binaries first`).toBe(true);
  const r = spawnSync('tar', ['-xzf', archive, '-C', dir, '--strip-components=3', 'kubernetes/node/bin/kubectl'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return join(dir, 'kubectl');
}

/** `kube-ipsec smoke` as a user runs it, from the lab's upstream router (where the API server's network is). */
function smoke(kubectl: string): Promise<KubeIpsecRun> {
  const args = ['smoke', '--config', join(stateDir, 'cluster.yaml'), '--out', join(stateDir, 'out'), '--kubectl', kubectl, '--timeout', '600'];
  return kubeIpsec(`${prefix}-upstream`, args, { echoStdout: true });
}

function lab(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const argv = [join(repoRoot, 'node_modules', '.bin', 'tsx'), join(repoRoot, 'src', 'cli.ts'), 'lab', '--config', configFile, '--state', stateDir, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

/** Processes anywhere on this machine whose command line names the lab's state dir. */
function processesOf(path: string): string[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .flatMap((e) => {
      try {
        const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
        return cmd.includes(path) ? [`${e}: ${cmd.slice(0, 120)}`] : [];
      } catch {
        return [];
      }
    });
}

interface CheckJson extends CheckReport {
  cluster: { nodes: NodeConnection[]; cleanup: Cleanup };
}

/** `kube-ipsec check` (the built command) as a user runs it against a provisioned cluster: inside the wire namespace, where the VMs' ssh is. */
function clusterCheck(args: string[]): Promise<KubeIpsecRun> {
  return kubeIpsec(`${prefix}-wire`, ['check', ...args], { echoStdout: false, env: { SSH_AUTH_SOCK: '' } });
}

interface KubeIpsecRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built command inside one of the lab's namespaces, its output kept (stderr, and stdout if asked, also shown). */
function kubeIpsec(ns: string, args: string[], o: { echoStdout: boolean; env?: NodeJS.ProcessEnv }): Promise<KubeIpsecRun> {
  const argv = ['nsenter', `--net=/run/netns/${ns}`, process.execPath, join(repoRoot, 'bin', 'kube-ipsec'), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (o.echoStdout) process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const MINIONS = ['minion1', 'minion2'];

/** Each minion's IPAM store, byte for byte, read over the lab's own ssh. */
async function ipamStores(): Promise<Record<string, string | undefined>> {
  const lab = openLab(stateDir);
  return Object.fromEntries(await Promise.all(MINIONS.map(async (n) => [n, await readNodeFile(lab, n, `${PATHS.cniDataDir}/kube-ipsec.json`)] as const)));
}

/** What a `kube-ipsec check` run may have left on a VM: pod namespaces, run directories, units of its own. */
async function leftOnVms(run: string): Promise<string[]> {
  const lab = openLab(stateDir);
  const script = `ls /run/netns /run/kube-ipsec-check /var/lib/kube-ipsec-check ${PATHS.systemdDir} 2>/dev/null | grep -F ${run} || true`;
  const found = await Promise.all(
    ['master', ...MINIONS].map(async (n) =>
      (await lab.runner.run(lab.backend.onNode(n, ['sh', '-c', script]), { timeoutMs: 60_000 })).stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => `${n}: ${l}`),
    ),
  );
  return found.flat();
}

// The default lab runs Kubernetes (what npm run binaries built); the nodeEncryption lab
// proves a property of the mesh alone and runs without it (--binaries none), which keeps
// this file inside CI's time: Kubernetes costs a lab about 10 minutes under emulation.
describe.each([
  { name: 'default, with Kubernetes', tag: 'd', yaml: NODES, nodeEncryption: false, kubernetes: true },
  { name: 'ipsec.nodeEncryption, the network alone', tag: 'n', yaml: `${NODES}ipsec:\n  nodeEncryption: true\n`, nodeEncryption: true, kubernetes: false },
])('the VM lab: master and two minions as qemu VMs ($name)', ({ tag, yaml, nodeEncryption, kubernetes }) => {
  let state: LabStateData;
  const started = performance.now();

  it(
    'comes up provisioned by kube-ipsec provision',
    async () => {
      assertPluginBuilt();
      stateDir = join(dir, `lab-${tag}`);
      stateDirs.push(stateDir);
      configFile = join(dir, `cluster-${tag}.yaml`);
      prefix = `kv${tag}${process.pid.toString(36).slice(-4)}`;
      writeFileSync(configFile, yaml);
      const up = await lab(['up', '--vm', '--prefix', prefix, ...(kubernetes ? [] : ['--binaries', 'none'])]);
      expect(up.code, 'lab up --vm').toBe(0);
      state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as LabStateData;
      expect(state.backend).toBe('vm');
      expect(state.espMode).toBe('kernel');
      expect(up.stdout).toMatch(/provision: provisioned: 3 of 3 nodes ok/);
      if (kubernetes) {
        // Nothing left idle: every archive was there (built from source), every unit started.
        expect(up.stdout).not.toMatch(/\(no \/usr\/local\/bin\/|needs kube-apiserver\.service/);
        // The built agnhost went the air-gapped way: verified by provisioning, loaded by kube-ipsec-images.service.
        for (const m of MINIONS)
          expect(up.stdout).toMatch(
            new RegExp(`${m}: docker holds registry\\.k8s\\.io/e2e-test-images/agnhost:\\S+ sha256:[0-9a-f]{64}, loaded from its archive`),
          );
        expect(up.stdout).toMatch(/Kubernetes: minion1, minion2 Ready \d+ s after provisioning/);
        expect(up.stdout).toMatch(/Kubernetes: CoreDNS available \d+ s after provisioning/);
        expect(state.vm?.kubernetes?.dnsReady).toBeGreaterThan(0);
      } else {
        expect(up.stdout).toMatch(/kubelet\.service \(no \/usr\/local\/bin\/kubelet\)/);
        // The air-gapped image path with an image built here from busybox-static.
        for (const m of MINIONS)
          expect(up.stdout).toMatch(new RegExp(`${m}: docker holds kube-ipsec\\.test/smoke:busybox sha256:[0-9a-f]{64}, loaded from its archive`));
        expect(up.stdout).toMatch(/kube-ipsec-addons\.service \(needs kube-apiserver\.service\)/);
      }
    },
    35 * 60_000,
  );

  it(
    'passes every check of `lab check`',
    async () => {
      // With Kubernetes, `lab check` runs what only it can (the destructive checks and the
      // upstream's masquerade); `kube-ipsec check` over ssh runs the rest afterwards, so the
      // lab's time under emulation is not spent twice on the same checks.
      const destructive = ['masquerade', 'fail-closed', 'reprovision', 'reboot'];
      const check = await lab(['check', '--json', ...(kubernetes ? ['--only', destructive.join(',')] : [])]);
      // tunnels always runs: the other checks read its result.
      const only = kubernetes ? ['tunnels', ...destructive] : [...CHECK_NAMES];
      const report = JSON.parse(check.stdout) as CheckReport;
      const failed = report.results.filter((r) => !r.ok && !r.skipped).map((r) => `${r.name}: ${r.problems.join('; ')}`);
      expect(failed).toEqual([]);
      expect(report.results.map((r) => r.name).sort()).toEqual([...only].sort());
      expect(report.results.filter((r) => r.skipped).map((r) => r.name)).toEqual(nodeEncryption || kubernetes ? [] : ['node-traffic']);
      expect(check.code).toBe(0);
      const result = (name: string) => report.results.find((r) => r.name === name);
      if (!kubernetes) {
        // Node addresses, NodePorts and masqueradeAll services to remote pods: every probe answered, as ESP.
        expect(result('sources')!.values).toMatchObject({ probes: 12, answered: 12, clearPod: 0 });
        // Kernel ESP: the crafted clear-text packets carry no secpath, so the inbound chain counts every one.
        expect(result('inbound')!.values).toMatchObject({ probes: 8, arrived: 0, answered: 0, controls: 6, controlsAnswered: 6 });
        expect(result('rekey')!.values).toMatchObject({ lost: 0, clearPod: 0 });
        const capture = result('capture')!;
        expect(capture.values?.espUdp).toBe(0);
        expect(capture.values?.esp).toBeGreaterThan(0);
      }
      expect(result('fail-closed')!.values).toMatchObject({ clearPod: 0, answered: 0, sourcesAnswered: 0 });
      if (nodeEncryption) {
        // Node to node (3×2) through ESP; from the upstream, the listeners and sshd of every node (3×2) in clear.
        expect(result('node-traffic')!.values).toMatchObject({
          inside: 6,
          insideAnswered: 6,
          outside: 6,
          outsideAnswered: 6,
          clearNodes: 0,
        });
      }
      const reboot = result('reboot')!;
      expect(reboot.values?.clearPod).toBe(0);
      expect(reboot.values?.staleBefore).toBeGreaterThan(0);
      expect(reboot.values?.staleAfter).toBe(0);
    },
    25 * 60_000,
  );

  if (kubernetes)
    it(
      'runs Kubernetes: `kube-ipsec smoke` passes from the upstream router',
      async () => {
        // As a user reaches a node: `npm run lab -- ssh master -- kubectl get nodes`. `lab check`
        // rebooted a minion just before: its kubelet may take minutes to report Ready again.
        let nodes = { code: null as number | null, stdout: '' };
        const allReady = () => nodes.code === 0 && MINIONS.every((m) => new RegExp(`^${m}\\s+Ready\\s`, 'm').test(nodes.stdout));
        const deadline = Date.now() + 10 * 60_000;
        do {
          nodes = await lab(['ssh', 'master', '--', 'kubectl', 'get', 'nodes']);
          if (!allReady()) await new Promise((r) => setTimeout(r, 5000));
        } while (!allReady() && Date.now() < deadline);
        expect(nodes.code).toBe(0);
        for (const m of MINIONS) expect(nodes.stdout).toMatch(new RegExp(`^${m}\\s+Ready\\s`, 'm'));
        const r = await smoke(builtKubectl());
        expect(r.code, `smoke:\n${r.stdout}\n${r.stderr}`).toBe(0);
      },
      30 * 60_000,
    );

  // The security model on the live cluster (docs/security.md): what the render promises holds
  // against the running API server and etcd.
  if (kubernetes)
    it(
      'keeps its trust domains live: Secrets encrypted in etcd, etcd closed to minions, an IKE certificate refused by the API server, an audit log',
      async () => {
        const l = openLab(stateDir);
        const on = async (node: string, script: string) =>
          (await l.runner.run(l.backend.onNode(node, ['sh', '-c', script]), { allowFail: true, timeoutMs: 120_000 })).stdout.trim();
        const secret = `kv-${prefix}`;
        const etcdctl = `/usr/local/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${PATHS.etcdCaCert} --cert=${PATHS.etcdHealthcheckClientCert} --key=${PATHS.etcdHealthcheckClientKey}`;
        expect(await on('master', `kubectl create secret generic ${secret} -n default --from-literal=k=plain-${prefix} >/dev/null && echo created`)).toBe(
          'created',
        );
        try {
          // What etcd holds: secretbox ciphertext, never the value.
          const stored = await on(
            'master',
            `${etcdctl} get /registry/secrets/default/${secret} --print-value-only > /run/${secret}; head -c 21 /run/${secret}; echo; grep -c plain-${prefix} /run/${secret}; rm -f /run/${secret}`,
          );
          expect(stored.split('\n')).toEqual(['k8s:enc:secretbox:v1:', '0']);
          // etcd listens on the master's loopback only: a minion cannot even connect.
          expect(await on('minion1', `timeout 5 bash -c '</dev/tcp/192.168.10.10/2379' 2>/dev/null && echo open || echo closed`)).toBe('closed');
          // A minion's IKE certificate is from the IKE CA, which the API server does not trust.
          const ike = await on(
            'minion1',
            `c=$(ls ${PATHS.ipsecCertDir}/*.pem | head -1); k=$(ls ${PATHS.ipsecKeyDir}/* | head -1); curl -s -o /dev/null -w '%{http_code}' --cacert ${PATHS.caCert} --cert "$c" --key "$k" https://192.168.10.10:6443/api/v1/secrets`,
          );
          expect(['000', '401', '403']).toContain(ike);
          // Who did what: the audit log records the request that made the Secret.
          expect(Number(await on('master', `grep -c '"resource":"secrets"' ${PATHS.auditLog}`))).toBeGreaterThan(0);
        } finally {
          await on('master', `kubectl delete secret ${secret} -n default --ignore-not-found`);
        }
      },
      10 * 60_000,
    );

  // kube-ipsec check over ssh is the same code whatever the mesh carries: the default lab runs
  // it, beside the real kube-proxy's chains and the cluster's own pods. Its default set: what
  // leaves the cluster as it is (fail-closed, reprovision and reboot ran in `lab check` above).
  if (!nodeEncryption)
    it(
      'passes `kube-ipsec check` over ssh with Kubernetes running, and leaves the nodes as it found them',
      async () => {
        // The lab's cluster.yaml is what a user of any provisioned cluster has: nodes[].ssh to
        // the VMs with pinned host keys. The check runs where the VMs' management network is.
        const before = await ipamStores();
        expect(Object.values(before).every((s) => s?.includes('allocations'))).toBe(true);
        const r = await clusterCheck(['--config', join(stateDir, 'cluster.yaml'), '--out', join(stateDir, 'out'), '--state', join(stateDir, 'pki'), '--json']);
        const report = JSON.parse(r.stdout) as CheckJson;
        console.log(formatReport(report));
        const failed = report.results.filter((x) => !x.ok && !x.skipped).map((x) => `${x.name}: ${x.problems.join('; ')}`);
        expect(failed).toEqual([]);
        expect(report.results.map((x) => x.name)).toEqual(CHECK_NAMES.filter((c) => !['fail-closed', 'reprovision', 'reboot'].includes(c)));
        // No machine outside the cluster here: masquerade says why, and does not count as passed.
        expect(report.results.filter((x) => x.skipped).map((x) => x.name)).toEqual(['node-traffic', 'masquerade']);
        expect(r.code, r.stderr).toBe(0);
        // Every capture ran on the nodes' underlay (eth1; ssh is on eth0): raw ESP seen there, none in
        // UDP, no clear-text pod packet although the cluster's own pods (CoreDNS) talk across nodes.
        expect(report.cluster.nodes.map((n) => [n.name, n.underlay, n.systemd, n.hostKey])).toEqual(
          ['master', ...MINIONS].map((n) => [n, 'eth1', true, 'pinned in cluster.yaml']),
        );
        const capture = report.results.find((x) => x.name === 'capture')!;
        expect(capture.values).toMatchObject({ clearPod: 0, espUdp: 0 });
        expect(capture.values?.esp).toBeGreaterThan(0);
        // Test pods deleted through the plugin; each store byte for byte as it was.
        expect(report.cluster.cleanup).toMatchObject({ pods: 4, podsDeleted: 4, problems: [] });
        expect(
          report.cluster.cleanup.stores.every((s) => s.asFound),
          JSON.stringify(report.cluster.cleanup.stores),
        ).toBe(true);
        expect(await ipamStores()).toEqual(before);
        const run = /\b(kic[0-9a-z]{4})-minion1-pod1\b/.exec(r.stderr)![1]!;
        expect(await leftOnVms(run)).toEqual([]);
        expect(processesOf(`kube-ipsec-check-${run}`)).toEqual([]);
        expect(readdirSync(stateDir).filter((f) => f.includes(run))).toEqual([]);
      },
      25 * 60_000,
    );

  it(
    'reports status and goes down leaving nothing behind',
    async () => {
      const status = await lab(['status']);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/minion1 .*active \(unit/);

      // What down must remove, from the state before it is gone.
      const qemuPids = state.processes.filter((p) => p.role === 'vm').map((p) => p.pid);
      expect(qemuPids).toHaveLength(3);
      const overlays = state.vm!.overlays;
      expect(overlays).toHaveLength(3);
      const gone = await lab(['down']);
      expect(gone.code).toBe(0);
      for (const pid of qemuPids)
        expect(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stateDir), `qemu ${pid}`).toBe(false);
      expect(processesOf(stateDir)).toEqual([]);
      const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`)) : [];
      expect(namespaces).toEqual([]);
      // Taps and bridges lived in the lab's namespaces only: none ever was in this one.
      expect(readdirSync('/sys/class/net').filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
      for (const f of overlays) expect(existsSync(f), f).toBe(false);
      expect(existsSync(stateDir)).toBe(false);
      console.log(`VM lab e2e: up, both checks, status and down in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    },
    25 * 60_000,
  );
});
