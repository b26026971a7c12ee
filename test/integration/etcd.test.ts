// Real etcd (Debian's etcd-server) in a namespace holding the master's address, started
// with exactly the rendered etcd.service command line and certificates: it listens on
// loopback only, answers the API server's etcd client and the health check, and refuses
// everything else — every credential a minion holds included (issue 18: with one CA, root
// on any minion could read and write etcd). A second etcd shows that a cluster issued with
// one CA keeps its data when it moves to the etcd CA and the loopback-only listeners.
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { hostPath, inNode, installView, openView, removeView, type NodeView } from '../../src/lab/node-view.ts';
import { ensurePki } from '../../src/pki/issue.ts';
import { directoryStore } from '../../src/pki/store.ts';
import { processRunner, waitFor } from '../../src/run.ts';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT, type Plan } from '../../src/plan/plan.ts';
import { ipsecCertPath, ipsecKeyPath, PATHS, UNITS } from '../../src/plan/paths.ts';
import type { RenderedFile } from '../../src/render/files.ts';
import { renderCluster, type RenderedCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { FIXED_NOW, issuePki, plan as makePlan } from '../helpers/cluster.ts';
import { copyLegacyState } from '../helpers/legacy-state.ts';
import { netnsLab } from '../helpers/netns.ts';
import { execStart, fileAt } from '../helpers/parse.ts';

const lab = netnsLab('etcd');
const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-etcd-'));
const plan: Plan = makePlan();

afterAll(async () => {
  await lab.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

interface RunningEtcd {
  view: NodeView;
  log: () => string;
  etcdctl: (args: string[], endpoint?: string) => ReturnType<typeof processRunner.run>;
  stop: () => Promise<void>;
}

/** A namespace with the master's address on a port-less bridge, the master's tree installed. */
async function masterNode(name: string, files: RenderedFile[]): Promise<NodeView> {
  const ns = await lab.add(name);
  await lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
  await lab.exec(ns, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
  await lab.exec(ns, ['ip', 'addr', 'add', `${plan.master.ip}/24`, 'dev', 'eth0']);
  await lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
  const view: NodeView = { ns, dir: join(scratch, name) };
  installView(view, files);
  // The air-gapped way: Debian's etcd put where the unit expects the pinned release.
  const { binary } = execStart(fileAt(files, `${PATHS.systemdDir}/${UNITS.etcd}`).content);
  expect(existsSync('/usr/bin/etcd'), 'etcd-server is not installed (scripts/test-deps installs it)').toBe(true);
  mkdirSync(dirname(hostPath(view, binary)), { recursive: true });
  copyFileSync('/usr/bin/etcd', hostPath(view, binary));
  lab.track(await openView(view));
  return view;
}

/** Starts etcd in `view` with `flags` (the rendered ones unless given) and waits until `healthy` answers. */
async function startEtcd(view: NodeView, unitText: string, healthArgs: string[], flags = execStart(unitText).flags): Promise<RunningEtcd> {
  const { binary } = execStart(unitText);
  let log = '';
  const [cmd, ...args] = inNode(view, [binary, ...flags.map(([k, v]) => `--${k}=${v}`)]);
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((ok) => child.on('exit', (code, signal) => ((log += `\n(etcd exited: ${code ?? signal})`), ok())));
  lab.track(child.pid!);
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const running: RunningEtcd = {
    view,
    log: () => log,
    etcdctl: (a, endpoint = plan.etcd.clientUrl) =>
      processRunner.run(inNode(view, ['etcdctl', `--endpoints=${endpoint}`, '--dial-timeout=3s', '--command-timeout=5s', ...a]), {
        allowFail: true,
        timeoutMs: 20_000,
        env: { ...process.env, ETCDCTL_API: '3' },
      }),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
  const healthy = await waitFor(async () => (await running.etcdctl([...healthArgs, 'endpoint', 'health'])).code === 0, 20_000, 250);
  expect(healthy, `etcd did not become healthy:\n${log.slice(-3000)}`).toBe(true);
  return running;
}

const identity = (cert: string, key: string) => [`--cacert=${PATHS.etcdCaCert}`, `--cert=${cert}`, `--key=${key}`];
const apiserverIdentity = identity(PATHS.apiserverEtcdClientCert, PATHS.apiserverEtcdClientKey);

describe('etcd with the rendered flags and certificates', () => {
  let cluster: RenderedCluster;
  let etcd: RunningEtcd;
  let view: NodeView;

  beforeAll(async () => {
    cluster = renderCluster(plan, await issuePki(plan), loadTemplates());
    view = await masterNode('master', cluster.nodes.get('master')!);
    etcd = await startEtcd(view, fileAt(cluster.nodes.get('master')!, `${PATHS.systemdDir}/${UNITS.etcd}`).content, apiserverIdentity);
  });
  afterAll(() => view && removeView(view));

  it("answers the apiserver's client certificate over TLS on loopback", async () => {
    const health = await etcd.etcdctl([...apiserverIdentity, 'endpoint', 'health']);
    expect(health.stdout + health.stderr).toContain(`${plan.etcd.clientUrl} is healthy`);
    expect((await etcd.etcdctl([...apiserverIdentity, 'put', '/registry/kube-ipsec-test', 'ok'])).code).toBe(0);
    expect((await etcd.etcdctl([...apiserverIdentity, 'get', '--print-value-only', '/registry/kube-ipsec-test'])).stdout.trim()).toBe('ok');
  });

  it("answers the health-check client (kubeadm's etcd/healthcheck-client)", async () => {
    const r = await etcd.etcdctl([...identity(PATHS.etcdHealthcheckClientCert, PATHS.etcdHealthcheckClientKey), 'endpoint', 'health']);
    expect(r.stdout + r.stderr).toContain(`${plan.etcd.clientUrl} is healthy`);
  });

  it('listens on loopback only: clients, peers and metrics (one member, no peer to talk to)', async () => {
    const listening = (await processRunner.run(inNode(view, ['ss', '-Hltn']))).stdout;
    const ports = [...listening.matchAll(/\s(\S+):(\d+)\s/g)].map(([, addr, port]) => ({ addr, port: Number(port) }));
    const etcdPorts = ports.filter((p) => [ETCD_CLIENT_PORT, ETCD_PEER_PORT, 2381].includes(p.port));
    expect(etcdPorts.map((p) => p.port).sort()).toEqual([ETCD_CLIENT_PORT, ETCD_PEER_PORT, 2381]);
    for (const p of etcdPorts) expect(p.addr, `:${p.port}`).toBe('127.0.0.1');
    // and the node address gets no TCP answer at all
    const r = await etcd.etcdctl([...apiserverIdentity, 'endpoint', 'health'], `https://${plan.master.ip}:${ETCD_CLIENT_PORT}`);
    expect(r.code).not.toBe(0);
  });

  it.each([
    ['kubelet client', PATHS.kubeletKubeconfig],
    ['kube-proxy', PATHS.kubeProxyKubeconfig],
    ['IKE certificate', 'ipsec'],
  ])("refuses every minion's %s", async (_, source) => {
    const tries = plan.minions.map(async (m) => {
      const files = cluster.nodes.get(m.name)!;
      let cert: string;
      let key: string;
      if (source === 'ipsec') {
        cert = fileAt(files, ipsecCertPath(m.name)).content;
        key = fileAt(files, ipsecKeyPath(m.name)).content;
      } else {
        const user = parseYaml(fileAt(files, source).content).users[0].user;
        cert = Buffer.from(user['client-certificate-data'], 'base64').toString();
        key = Buffer.from(user['client-key-data'], 'base64').toString();
      }
      // Presented to etcd the way a root shell on the master would (the ports are on loopback).
      const dir = join(scratch, 'minion-credentials', `${m.name}-${source.replace(/\W/g, '_')}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cert.pem'), cert);
      writeFileSync(join(dir, 'key.pem'), key, { mode: 0o600 });
      const r = await etcd.etcdctl([...identity(join(dir, 'cert.pem'), join(dir, 'key.pem')), 'get', '--prefix', '/registry/']);
      expect(r.code, `${m.name}: ${r.stdout}`).not.toBe(0);
      expect(r.stdout).not.toContain('kube-ipsec-test');
    });
    await Promise.all(tries);
    expect(etcd.log()).toMatch(/unknown authority|bad certificate|rejected connection/);
  });

  it('refuses a client certificate from another CA', async () => {
    const dir = join(scratch, 'foreign');
    execFileSync('mkdir', ['-p', dir]);
    const openssl = (...a: string[]) => execFileSync('openssl', a, { stdio: 'pipe' });
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${dir}/ca.key`,
      '-out',
      `${dir}/ca.crt`,
      '-subj',
      '/CN=other-ca',
      '-days',
      '1',
    );
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${dir}/client.key`,
      '-out',
      `${dir}/client.csr`,
      '-subj',
      '/CN=kube-apiserver-etcd-client',
    );
    writeFileSync(`${dir}/ext`, 'extendedKeyUsage=clientAuth\n');
    openssl(
      'x509',
      '-req',
      '-in',
      `${dir}/client.csr`,
      '-CA',
      `${dir}/ca.crt`,
      '-CAkey',
      `${dir}/ca.key`,
      '-CAcreateserial',
      '-out',
      `${dir}/client.crt`,
      '-days',
      '1',
      '-extfile',
      `${dir}/ext`,
    );
    const r = await etcd.etcdctl(identity(`${dir}/client.crt`, `${dir}/client.key`).concat(['endpoint', 'health']));
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/unhealthy|bad certificate|unknown authority|deadline/);
    expect(etcd.log()).toMatch(/unknown authority|bad certificate|rejected connection/);
  });

  it('refuses a client without a certificate', async () => {
    const r = await etcd.etcdctl([`--cacert=${PATHS.etcdCaCert}`, 'endpoint', 'health']);
    expect(r.code).not.toBe(0);
  });
});

describe('a cluster issued with one CA (test/fixtures/legacy-one-ca) moves to the etcd CA', () => {
  it('keeps its data across the re-render: new certificates, loopback-only listeners, same data dir', async () => {
    const state = join(scratch, 'legacy-state');
    copyLegacyState(state);
    // What main rendered for etcd: its flags (listeners on the node address) and the one-CA certificates.
    const read = (f: string) => execFileSync('cat', [join(state, f)], { encoding: 'utf8' });
    const oldFiles: RenderedFile[] = [
      { path: PATHS.etcdCaCert, content: read('ca.crt'), mode: 0o644 },
      { path: PATHS.etcdServerCert, content: read('etcd-server.crt'), mode: 0o644 },
      { path: PATHS.etcdServerKey, content: read('etcd-server.key'), mode: 0o600 },
      { path: PATHS.etcdPeerCert, content: read('etcd-peer.crt'), mode: 0o644 },
      { path: PATHS.etcdPeerKey, content: read('etcd-peer.key'), mode: 0o600 },
      { path: PATHS.apiserverEtcdClientCert, content: read('apiserver-etcd-client.crt'), mode: 0o644 },
      { path: PATHS.apiserverEtcdClientKey, content: read('apiserver-etcd-client.key'), mode: 0o600 },
    ];
    const oldClient = join(scratch, 'legacy-client');
    mkdirSync(oldClient, { recursive: true });
    writeFileSync(join(oldClient, 'c.pem'), read('apiserver-etcd-client.crt'));
    writeFileSync(join(oldClient, 'k.pem'), read('apiserver-etcd-client.key'), { mode: 0o600 });
    const migrated = renderCluster(
      plan,
      (await ensurePki(plan, directoryStore(state), { now: FIXED_NOW, random: (n) => crypto.getRandomValues(new Uint8Array(n)) })).materials,
      loadTemplates(),
    );
    const newFiles = migrated.nodes.get('master')!;
    const etcdUnit = fileAt(newFiles, `${PATHS.systemdDir}/${UNITS.etcd}`).content;
    const m = plan.master;
    const mainFlags = execStart(etcdUnit).flags.map(([k, v]): [string, string] => {
      // a2c1d71's etcdFlags: clients on loopback and the node address, peers on the node address.
      if (k === 'listen-client-urls') return [k, `https://127.0.0.1:${ETCD_CLIENT_PORT},https://${m.ip}:${ETCD_CLIENT_PORT}`];
      if (k === 'advertise-client-urls') return [k, `https://${m.ip}:${ETCD_CLIENT_PORT}`];
      if (k === 'listen-peer-urls' || k === 'initial-advertise-peer-urls') return [k, `https://${m.ip}:${ETCD_PEER_PORT}`];
      if (k === 'initial-cluster') return [k, `${m.name}=https://${m.ip}:${ETCD_PEER_PORT}`];
      return [k, v];
    });
    const view = await masterNode('legacy', [...oldFiles, ...newFiles.filter((f) => f.path === `${PATHS.systemdDir}/${UNITS.etcd}`)]);
    try {
      const before = await startEtcd(view, etcdUnit, apiserverIdentity, mainFlags);
      expect((await before.etcdctl([...apiserverIdentity, 'put', '/registry/secrets/default/kept', 'across-the-move'])).code).toBe(0);
      await before.stop();
      // Provisioning swaps the master's tree, then restarts etcd with the new unit. (Written
      // through the node's own view: its tree is an overlay's lower layer, not to be changed.)
      for (const f of newFiles.filter((x) => x.path.startsWith(PATHS.pkiDir))) {
        await processRunner.run(inNode(view, ['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', 'sh', f.path, f.mode.toString(8)]), {
          input: f.content,
        });
      }
      const after = await startEtcd(view, etcdUnit, apiserverIdentity);
      const got = await after.etcdctl([...apiserverIdentity, 'get', '--print-value-only', '/registry/secrets/default/kept']);
      expect(got.stdout.trim(), after.log().slice(-2000)).toBe('across-the-move');
      // The old one-CA client certificate no longer opens it.
      expect((await after.etcdctl([...identity(join(oldClient, 'c.pem'), join(oldClient, 'k.pem')), 'get', '/registry/secrets/default/kept'])).code).not.toBe(
        0,
      );
      await after.stop();
    } finally {
      removeView(view);
    }
  });
});
