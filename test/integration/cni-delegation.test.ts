// Delegated IPAM through CNI_PATH, exactly as the reference bridge does, with Debian's Go
// host-local and static plugins (which speak CNI up to 1.0.0: a 1.1.0 configuration
// exercises the retry at the highest common version).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cniFixture, ipv4Addresses, links, type CniFixture } from '../helpers/cni.ts';

let fx: CniFixture;

const hostLocal = (version = '1.1.0', extra: Record<string, unknown> = {}) => ({
  cniVersion: version,
  name: 'hlnet',
  type: 'ipsec-cni',
  bridge: 'br-hl',
  mtu: 1400,
  logFile: join(fx.dir, 'cni.log'),
  ipam: { type: 'host-local', dataDir: join(fx.dir, 'host-local'), ranges: [[{ subnet: '10.245.1.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
  ...extra,
});

const hlReservations = () => {
  const dir = join(fx.dir, 'host-local', 'hlnet');
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
        .sort()
    : [];
};

beforeAll(async () => {
  fx = await cniFixture('cnid');
});
afterAll(() => fx?.cleanup());

describe('host-local', () => {
  it.each(['1.1.0', '1.0.0', '0.4.0'])('allocates through host-local with a %s config; pods talk through the gateway', async (v) => {
    const tag = v.replaceAll('.', '');
    const a = await fx.pod(`hla${tag}`);
    const b = await fx.pod(`hlb${tag}`);
    const ra = await fx.cni({ command: 'ADD', containerId: `hla${tag}`, netns: fx.lab.path(a) }, hostLocal(v));
    const rb = await fx.cni({ command: 'ADD', containerId: `hlb${tag}`, netns: fx.lab.path(b) }, hostLocal(v));
    expect(ra.code, ra.stdout).toBe(0);
    expect(rb.code, rb.stdout).toBe(0);
    expect(ra.json.cniVersion).toBe(v);
    const ipA = ra.json.ips[0].address as string;
    expect(ipA).toMatch(/^10\.245\.1\.\d+\/24$/);
    expect(ra.json.ips[0].gateway).toBe('10.245.1.1');
    expect(hlReservations()).toEqual(expect.arrayContaining([ipA.split('/')[0], rb.json.ips[0].address.split('/')[0]]));
    expect(await ipv4Addresses(a)).toEqual([ipA]);
    await fx.lab.exec(a, ['ping', '-c1', '-W2', rb.json.ips[0].address.split('/')[0]]);
    await fx.lab.exec(a, ['ping', '-c1', '-W2', '10.245.1.1']);

    const check = await fx.cni({ command: 'CHECK', containerId: `hla${tag}`, netns: fx.lab.path(a) }, hostLocal(v, { prevResult: ra.json }));
    expect(check.code, check.stdout).toBe(0);

    for (const [id, ns] of [
      [`hla${tag}`, a],
      [`hlb${tag}`, b],
    ] as const) {
      const d = await fx.cni({ command: 'DEL', containerId: id, netns: fx.lab.path(ns) }, hostLocal(v, { prevResult: id === `hla${tag}` ? ra.json : rb.json }));
      expect(d.code, d.stdout).toBe(0);
    }
    expect(hlReservations()).toEqual([]);
    expect(await ipv4Addresses(a)).toEqual([]);
  });

  it('gives the delegate’s address back when the kernel part of ADD fails', async () => {
    const ns = await fx.pod('hlfail');
    await fx.lab.exec(ns, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']); // the name ADD needs is taken
    const r = await fx.cni({ command: 'ADD', containerId: 'hlfail', netns: fx.lab.path(ns) }, hostLocal());
    expect(r.json).toMatchObject({ code: 100 });
    expect(hlReservations()).toEqual([]);
    expect((await links(fx.node)).filter((l) => l.startsWith('veth'))).toEqual([]);
  });

  it('passes the delegate’s own error through', async () => {
    const ns = await fx.pod('hlbad');
    const conf = hostLocal('1.0.0');
    (conf.ipam as Record<string, unknown>).ranges = [[{ subnet: 'not-a-subnet' }]];
    const r = await fx.cni({ command: 'ADD', containerId: 'hlbad', netns: fx.lab.path(ns) }, conf);
    expect(r.code).toBe(1);
    expect(r.json.msg).toMatch(/IPAM plugin 'host-local' ADD/);
    expect(r.json.msg).toMatch(/not-a-subnet/);
  });

  it('runs GC and STATUS although host-local predates them (nothing to delegate)', async () => {
    const ns = await fx.pod('hlgc');
    const add = await fx.cni({ command: 'ADD', containerId: 'hlgc', netns: fx.lab.path(ns) }, hostLocal());
    expect(add.code).toBe(0);
    expect((await fx.cni({ command: 'STATUS' }, hostLocal())).code).toBe(0);
    // GC with an empty valid list removes our host veth (host-local keeps its own files)
    const gc = await fx.cni({ command: 'GC' }, hostLocal('1.1.0', { 'cni.dev/valid-attachments': [] }));
    expect(gc.code, gc.stdout).toBe(0);
    expect(await links(fx.node)).not.toContain(add.json.interfaces[0].name);
    expect((await fx.cni({ command: 'DEL', containerId: 'hlgc', netns: fx.lab.path(ns) }, hostLocal())).code).toBe(0);
    expect(hlReservations()).toEqual([]);
  });
});

describe('static', () => {
  it('applies the address, gateway and routes the static plugin returns', async () => {
    const conf = {
      cniVersion: '1.0.0',
      name: 'stnet',
      type: 'ipsec-cni',
      bridge: 'br-static',
      logFile: join(fx.dir, 'cni.log'),
      ipam: {
        type: 'static',
        addresses: [{ address: '10.245.2.10/24', gateway: '10.245.2.1' }],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '192.0.2.128/25', gw: '10.245.2.254' }],
      },
    };
    const ns = await fx.pod('static');
    const r = await fx.cni({ command: 'ADD', containerId: 'static1', netns: fx.lab.path(ns), args: 'IgnoreUnknown=1' }, conf);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.ips).toEqual([{ address: '10.245.2.10/24', gateway: '10.245.2.1', interface: 1 }]);
    expect(await ipv4Addresses(ns)).toEqual(['10.245.2.10/24']);
    const routes = JSON.parse((await fx.lab.exec(ns, ['ip', '-j', 'route'])).stdout);
    expect(routes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.245.2.1' }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: '192.0.2.128/25', gateway: '10.245.2.254' }));
    await fx.lab.exec(ns, ['ping', '-c1', '-W2', '10.245.2.1']);
    const d = await fx.cni({ command: 'DEL', containerId: 'static1', netns: fx.lab.path(ns) }, conf);
    expect(d.code, d.stdout).toBe(0);
    expect(await ipv4Addresses(ns)).toEqual([]);
  });
});
