// Real etcd (Debian's etcd-server) in a namespace holding the master's address, started
// with exactly the rendered etcd.service command line and certificates; etcdctl with the
// apiserver's client certificate gets a healthy endpoint over TLS, anyone else is refused.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostPath, inNode, installView, openView, removeView, type NodeView } from '../../src/lab/node-view.ts';
import { processRunner, waitFor } from '../../src/run.ts';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import type { Plan } from '../../src/plan/plan.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { issuePki, plan as makePlan } from '../helpers/cluster.ts';
import { netnsLab } from '../helpers/netns.ts';
import { execStart, fileAt } from '../helpers/parse.ts';

const lab = netnsLab('etcd');
const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-etcd-'));
let view: NodeView;
let plan: Plan;
let etcdLog = '';

const etcdctl = (args: string[]) =>
  processRunner.run(inNode(view, ['etcdctl', `--endpoints=${plan.etcd.clientUrl}`, '--dial-timeout=3s', '--command-timeout=5s', ...args]), { allowFail: true, timeoutMs: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
const apiserverIdentity = () => [`--cacert=${PATHS.etcdCaCert}`, `--cert=${PATHS.apiserverEtcdClientCert}`, `--key=${PATHS.apiserverEtcdClientKey}`];

beforeAll(async () => {
  plan = makePlan();
  const cluster = renderCluster(plan, await issuePki(plan), loadTemplates());
  const files = cluster.nodes.get('master')!;
  const ns = await lab.add('master');
  await lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
  await lab.exec(ns, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
  await lab.exec(ns, ['ip', 'addr', 'add', `${plan.master.ip}/24`, 'dev', 'eth0']);
  await lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
  view = { ns, dir: join(scratch, 'master') };
  installView(view, files);
  const { binary, flags } = execStart(fileAt(files, `${PATHS.systemdDir}/${UNITS.etcd}`).content);
  // The air-gapped way: Debian's etcd put where the unit expects the pinned release.
  expect(existsSync('/usr/bin/etcd'), 'etcd-server is not installed (scripts/test-deps installs it)').toBe(true);
  mkdirSync(dirname(hostPath(view, binary)), { recursive: true });
  copyFileSync('/usr/bin/etcd', hostPath(view, binary));
  lab.track(await openView(view));
  const [cmd, ...args] = inNode(view, [binary, ...flags.map(([k, v]) => `--${k}=${v}`)]);
  const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.on("exit", (code, signal) => (etcdLog += `\n(etcd exited: ${code ?? signal})`));
  lab.track(child.pid!);
  child.stdout.on('data', (d) => (etcdLog += d));
  child.stderr.on('data', (d) => (etcdLog += d));
  const healthy = await waitFor(async () => (await etcdctl([...apiserverIdentity(), 'endpoint', 'health'])).code === 0, 20_000, 250);
  expect(healthy, `etcd did not become healthy:\n${etcdLog.slice(-3000)}`).toBe(true);
});

afterAll(async () => {
  await lab.cleanup();
  if (view) removeView(view);
  rmSync(scratch, { recursive: true, force: true });
});

describe('etcd with the rendered flags and certificates', () => {
  it('answers the apiserver\'s client certificate over TLS on loopback', async () => {
    const health = await etcdctl([...apiserverIdentity(), 'endpoint', 'health']);
    expect(health.stdout + health.stderr).toContain(`${plan.etcd.clientUrl} is healthy`);
    expect((await etcdctl([...apiserverIdentity(), 'put', '/registry/kube-ipsec-test', 'ok'])).code).toBe(0);
    expect((await etcdctl([...apiserverIdentity(), 'get', '--print-value-only', '/registry/kube-ipsec-test'])).stdout.trim()).toBe('ok');
  });

  it('refuses a client certificate from another CA', async () => {
    const dir = join(scratch, 'foreign');
    execFileSync('mkdir', ['-p', dir]);
    const openssl = (...a: string[]) => execFileSync('openssl', a, { stdio: 'pipe' });
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${dir}/ca.key`, '-out', `${dir}/ca.crt`, '-subj', '/CN=other-ca', '-days', '1');
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${dir}/client.key`, '-out', `${dir}/client.csr`, '-subj', '/CN=kube-apiserver-etcd-client');
    writeFileSync(`${dir}/ext`, 'extendedKeyUsage=clientAuth\n');
    openssl('x509', '-req', '-in', `${dir}/client.csr`, '-CA', `${dir}/ca.crt`, '-CAkey', `${dir}/ca.key`, '-CAcreateserial', '-out', `${dir}/client.crt`, '-days', '1', '-extfile', `${dir}/ext`);
    const r = await etcdctl([`--cacert=${PATHS.etcdCaCert}`, `--cert=${dir}/client.crt`, `--key=${dir}/client.key`, 'endpoint', 'health']);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/unhealthy|bad certificate|unknown authority|deadline/);
    expect(etcdLog).toMatch(/unknown authority|bad certificate|rejected connection/);
  });

  it('refuses a client without a certificate', async () => {
    const r = await etcdctl([`--cacert=${PATHS.etcdCaCert}`, 'endpoint', 'health']);
    expect(r.code).not.toBe(0);
  });
});
