// Issue 18, high: etcd listened on the node address (and trusted the cluster CA, which every
// minion's certificates chain to). Now it serves the API server only: clients, metrics and —
// with one member — its peer listener on loopback. That the running etcd refuses every
// minion credential is shown with real etcd in test/integration/etcd.test.ts.
import { describe, expect, it } from 'vitest';
import { UNITS, PATHS } from '../../src/plan/paths.ts';
import { etcdPlan, type Plan } from '../../src/plan/plan.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan as makePlan } from '../helpers/cluster.ts';
import { fileAt, flagValue } from '../helpers/parse.ts';

const host = (url: string) => new URL(url).hostname;

describe('etcd serves the API server only', () => {
  const plan: Plan = makePlan();
  const master = renderCluster(plan, placeholderPki(plan), loadTemplates()).nodes.get('master')!;
  const etcd = fileAt(master, `${PATHS.systemdDir}/${UNITS.etcd}`).content;
  const urls = (flag: string) => flagValue(etcd, flag).split(',');

  it('listens for clients and metrics on loopback only, and the API server dials it there', () => {
    for (const flag of ['listen-client-urls', 'advertise-client-urls', 'listen-metrics-urls']) {
      for (const url of urls(flag)) expect(host(url), `--${flag}=${url}`).toBe('127.0.0.1');
    }
    expect(host(flagValue(fileAt(master, `${PATHS.systemdDir}/${UNITS.apiserver}`).content, 'etcd-servers'))).toBe('127.0.0.1');
  });

  it('one member has no peers: its peer listener stays on loopback, never on the node address', () => {
    for (const flag of ['listen-peer-urls', 'initial-advertise-peer-urls']) {
      for (const url of urls(flag)) expect(host(url), `--${flag}=${url}`).toBe('127.0.0.1');
    }
    expect(flagValue(etcd, 'initial-cluster')).toBe(`${plan.master.name}=https://127.0.0.1:2380`);
    expect(etcd).not.toContain(plan.master.ip);
  });

  it('several members would peer on their node addresses, with peer certificates and peer client auth', () => {
    const other = { ...plan.master, name: 'master2', ip: '192.168.10.11' };
    const e = etcdPlan([plan.master, other]);
    expect(e.members).toEqual([
      { name: plan.master.name, peerUrl: `https://${plan.master.ip}:2380` },
      { name: 'master2', peerUrl: 'https://192.168.10.11:2380' },
    ]);
    expect(e.clientUrl).toBe('https://127.0.0.1:2379');
    expect(flagValue(etcd, 'peer-client-cert-auth')).toBe('true');
    expect(flagValue(etcd, 'peer-trusted-ca-file')).toBe(PATHS.etcdCaCert);
  });

  it('requires client certificates from the etcd CA, which is not the cluster CA', () => {
    expect(flagValue(etcd, 'client-cert-auth')).toBe('true');
    expect(flagValue(etcd, 'trusted-ca-file')).toBe(PATHS.etcdCaCert);
    expect(fileAt(master, PATHS.etcdCaCert).content).not.toBe(fileAt(master, PATHS.caCert).content);
  });
});
