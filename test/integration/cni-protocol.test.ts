// Every verb of the built plugin by the raw CNI protocol, against the real kernel, inside
// namespaces this file creates (a node namespace holding the bridge, one per pod).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { cniFixture, ipv4Addresses, links, readStore, type CniFixture, type CniOutcome } from '../helpers/cni.ts';
import { run } from '../helpers/netns.ts';

let fx: CniFixture;
let rootLinksBefore: string[];
const NET = 'protonet';
const BR = 'br-proto';

function conf(extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: NET,
    type: 'ipsec-cni',
    bridge: BR,
    subnet: '10.241.1.0/24',
    mtu: 1400,
    hairpinMode: true,
    dataDir: join(fx.dir, 'ipam'),
    logFile: join(fx.dir, 'cni.log'),
    ...extra,
  };
}

async function addPod(name: string, extra: Record<string, unknown> = {}, args?: string) {
  const ns = await fx.pod(name);
  const r = await fx.cni({ command: 'ADD', containerId: `ctr-${name}`, netns: fx.lab.path(ns), args }, conf(extra));
  expect(r.stderr).toBe('');
  expect(r.code, r.stdout).toBe(0);
  return { ns, id: `ctr-${name}`, result: r.json };
}

const allocated = () => Object.keys(readStore(join(fx.dir, 'ipam'), NET).allocations).sort();

beforeAll(async () => {
  rootLinksBefore = await links('');
  fx = await cniFixture('cnip');
});
afterAll(async () => {
  await fx?.cleanup();
  // Nothing of ours in the root namespace, ever.
  const after = await links('');
  expect(after.filter((l) => !rootLinksBefore.includes(l))).toEqual([]);
});

describe('VERSION', () => {
  it('lists 0.3.0 … 1.1.0 without reading a config', async () => {
    const r = await fx.cni({ command: 'VERSION' }, '');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});

describe('ADD', () => {
  it('creates bridge, veth pair, address, route and MTU, and reports them', async () => {
    const { ns, id, result } = await addPod('a1', {}, 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0');
    expect(result.cniVersion).toBe('1.1.0');
    const [host, pod] = result.interfaces;
    expect(pod).toMatchObject({ name: 'eth0', sandbox: fx.lab.path(ns), mtu: 1400 });
    expect(host.name).toMatch(/^veth[0-9a-f]{11}$/);
    expect(result.ips).toEqual([{ address: '10.241.1.2/24', gateway: '10.241.1.1', interface: 1 }]);
    expect(result.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.241.1.1' }]);

    const podLink = JSON.parse((await fx.lab.exec(ns, ['ip', '-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0];
    expect(podLink.address).toBe(pod.mac);
    expect(podLink.mtu).toBe(1400);
    expect(await ipv4Addresses(ns)).toEqual(['10.241.1.2/24']);
    const routes = JSON.parse((await fx.lab.exec(ns, ['ip', '-j', 'route'])).stdout);
    expect(routes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.241.1.1', dev: 'eth0' }));

    const hostLink = JSON.parse((await fx.lab.exec(fx.node, ['ip', '-j', '-d', 'link', 'show', 'dev', host.name])).stdout)[0];
    expect(hostLink).toMatchObject({ address: host.mac, master: BR, mtu: 1400, ifalias: `ipsec-cni:${id}/eth0` });
    expect(hostLink.linkinfo.info_slave_data.hairpin).toBe(true);
    expect(hostLink.flags).toContain('UP');
    const bridge = JSON.parse((await fx.lab.exec(fx.node, ['ip', '-j', 'addr', 'show', 'dev', BR])).stdout)[0];
    expect(bridge.addr_info).toContainEqual(expect.objectContaining({ local: '10.241.1.1', prefixlen: 24 }));

    const store = readStore(join(fx.dir, 'ipam'), NET) as any;
    expect(store.allocations['10.241.1.2']).toMatchObject({
      containerId: id,
      ifname: 'eth0',
      netns: fx.lab.path(ns),
      podNamespace: 'shop',
      podName: 'web-0',
      hostVeth: host.name,
    });
  });

  it('connects pods to each other and to the gateway', async () => {
    const a = await addPod('a2');
    const b = await addPod('a3');
    const ipB = b.result.ips[0].address.split('/')[0];
    await fx.lab.exec(a.ns, ['ping', '-c1', '-W2', ipB]);
    await fx.lab.exec(a.ns, ['ping', '-c1', '-W2', '10.241.1.1']);
    await fx.lab.exec(fx.node, ['ping', '-c1', '-W2', a.result.ips[0].address.split('/')[0]]);
  });

  it.each(['1.0.0', '0.4.0', '0.3.1', '0.3.0'])('answers a %s config in the %s result format', async (v) => {
    const { result } = await addPod(`v${v.replaceAll('.', '')}`, { cniVersion: v });
    expect(result.cniVersion).toBe(v);
    expect(result.interfaces[1].mtu).toBeUndefined();
    if (v.startsWith('0.')) expect(result.ips[0].version).toBe('4');
    else expect(result.ips[0].version).toBeUndefined();
  });

  it('does not take a second IP when the same container+ifname is added twice', async () => {
    const { ns, id } = await addPod('dup');
    const before = allocated();
    const again = await fx.cni({ command: 'ADD', containerId: id, netns: fx.lab.path(ns) }, conf());
    expect(again.code).toBe(1);
    expect(again.json.code).toBe(100);
    expect(again.json.msg).toMatch(/already exists/);
    expect(allocated()).toEqual(before);
    expect(await ipv4Addresses(ns)).toHaveLength(1); // the first ADD's networking is untouched
  });

  it('adds a second network to a pod, skipping the default route the first one set (spec)', async () => {
    const { ns, id } = await addPod('twonets');
    const second = conf({ name: 'second', bridge: 'br-second', subnet: '10.241.2.0/24' });
    const r = await fx.cni({ command: 'ADD', containerId: id, netns: fx.lab.path(ns), ifname: 'net1' }, second);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.routes ?? []).toEqual([]); // not installed, so not reported
    expect(await ipv4Addresses(ns, 'net1')).toEqual(['10.241.2.2/24']);
    const routes = JSON.parse((await fx.lab.exec(ns, ['ip', '-j', 'route', 'show', 'default'])).stdout);
    expect(routes).toEqual([expect.objectContaining({ gateway: '10.241.1.1', dev: 'eth0' })]);
    const check = await fx.cni({ command: 'CHECK', containerId: id, netns: fx.lab.path(ns), ifname: 'net1' }, { ...second, prevResult: r.json });
    expect(check.code, check.stdout).toBe(0);
    expect((await fx.cni({ command: 'DEL', containerId: id, netns: fx.lab.path(ns), ifname: 'net1' }, second)).code).toBe(0);
    expect(await ipv4Addresses(ns, 'net1')).toEqual([]);
    expect(await ipv4Addresses(ns)).toHaveLength(1); // eth0 untouched
  });

  it('works with a netns given as /proc/PID/ns/net (entered through nsenter)', async () => {
    const ns = await fx.pod('procns');
    const holder = fx.lab.spawn(ns, ['sleep', '60']);
    // `ip netns exec` enters the netns, then execs sleep in place (same PID). Until it has
    // entered, /proc/PID/ns/net is still the root namespace: wait for the pod's inode, so
    // the plugin can never be pointed at the root namespace.
    const nsPath = `/proc/${holder.pid}/ns/net`;
    const want = `net:[${statSync(fx.lab.path(ns)).ino}]`;
    for (let i = 0; readlinkSync(nsPath) !== want; i++) {
      expect(i, 'the holder process never entered the pod netns').toBeLessThan(500);
      await new Promise((r) => setTimeout(r, 10));
    }
    const add = await fx.cni({ command: 'ADD', containerId: 'ctr-procns', netns: nsPath }, conf());
    expect(add.code, add.stdout).toBe(0);
    expect(await ipv4Addresses(ns)).toEqual([add.json.ips[0].address]);
    const del = await fx.cni({ command: 'DEL', containerId: 'ctr-procns', netns: nsPath }, conf());
    expect(del.code, del.stdout).toBe(0);
    expect(await ipv4Addresses(ns)).toEqual([]);
    holder.kill('SIGKILL');
  });
});

describe('store lock', () => {
  it('waits while another process holds the network lock (flock(2)), then allocates', async () => {
    const ns = await fx.pod('locked');
    const lockFile = join(fx.dir, 'ipam', `${NET}.lock`);
    // util-linux flock(1) takes the same flock(2) lock the plugin takes
    const holder = spawn('flock', ['-x', lockFile, 'sleep', '0.5'], { stdio: 'ignore' });
    fx.lab.track(holder.pid!);
    let holderDone = false;
    holder.on('exit', () => (holderDone = true));
    // until `flock -n` fails, the holder does not have the lock yet
    while ((await run(['flock', '-n', '-x', lockFile, 'true'], { allowFail: true })).code === 0) {
      expect(holderDone).toBe(false);
    }
    const r = await fx.cni({ command: 'ADD', containerId: 'ctr-locked', netns: fx.lab.path(ns) }, conf());
    expect(r.code, r.stdout).toBe(0);
    expect(holderDone, 'ADD finished while another process held the lock').toBe(true);
    expect(allocated()).toContain(r.json.ips[0].address.split('/')[0]);
  });

  it('answers "try again later" (11) when the lock stays busy past lockTimeoutMs, taking nothing', async () => {
    const ns = await fx.pod('busy');
    const lockFile = join(fx.dir, 'ipam', `${NET}.lock`);
    // its own process group, so flock and its sleep (which inherits the lock) die together
    const holder = spawn('flock', ['-x', lockFile, 'sleep', '30'], { stdio: 'ignore', detached: true });
    fx.lab.track(holder.pid!);
    const killHolder = () => {
      try {
        process.kill(-holder.pid!, 'SIGKILL'); // the kernel drops the lock with them
      } catch {
        // already gone
      }
    };
    let r: CniOutcome;
    const before = allocated();
    try {
      while ((await run(['flock', '-n', '-x', lockFile, 'true'], { allowFail: true })).code === 0);
      r = await fx.cni({ command: 'ADD', containerId: 'ctr-busy', netns: fx.lab.path(ns) }, conf({ lockTimeoutMs: 200 }));
    } finally {
      killHolder();
    }
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 11 });
    expect(r.json.msg).toMatch(/lock .* is busy/);
    expect(allocated()).toEqual(before);
    expect(await ipv4Addresses(ns)).toEqual([]);
  });
});

describe('CHECK', () => {
  it('passes on an intact pod and fails once its address is removed', async () => {
    const { ns, id, result } = await addPod('chk');
    const call = { command: 'CHECK', containerId: id, netns: fx.lab.path(ns) };
    const ok = await fx.cni(call, conf({ prevResult: result }));
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toBe('');
    await fx.lab.exec(ns, ['ip', 'addr', 'del', result.ips[0].address, 'dev', 'eth0']);
    const bad = await fx.cni(call, conf({ prevResult: result }));
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ code: 103 });
    expect(bad.json.msg).toContain(`eth0 lacks address ${result.ips[0].address}`);
  });

  it('fails when the host veth left the bridge or the default route is gone', async () => {
    const { ns, id, result } = await addPod('chk2');
    await fx.lab.exec(ns, ['ip', 'route', 'del', 'default']);
    await fx.lab.exec(fx.node, ['ip', 'link', 'set', result.interfaces[0].name, 'nomaster']);
    const bad = await fx.cni({ command: 'CHECK', containerId: id, netns: fx.lab.path(ns) }, conf({ prevResult: result }));
    expect(bad.json.code).toBe(103);
    expect(bad.json.msg).toMatch(/route to 0.0.0.0\/0 via 10.241.1.1 on eth0 is missing/);
    expect(bad.json.msg).toMatch(/attached to nothing, not br-proto/);
  });

  it('needs prevResult (7) and a config version of at least 0.4.0 (1)', async () => {
    const { ns, id, result } = await addPod('chk3');
    const call = { command: 'CHECK', containerId: id, netns: fx.lab.path(ns) };
    expect((await fx.cni(call, conf())).json.code).toBe(7);
    expect((await fx.cni(call, conf({ cniVersion: '0.3.1', prevResult: result }))).json.code).toBe(1);
  });
});

describe('DEL', () => {
  it('is idempotent: a second DEL and a DEL of an unknown container succeed', async () => {
    const { ns, id } = await addPod('del1');
    const call = { command: 'DEL', containerId: id, netns: fx.lab.path(ns) };
    for (let i = 0; i < 2; i++) {
      const r = await fx.cni(call, conf());
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toBe('');
    }
    expect(await ipv4Addresses(ns)).toEqual([]);
    expect((await fx.cni({ command: 'DEL', containerId: 'never-added' }, conf())).code).toBe(0);
  });

  it('works without CNI_NETNS: releases the IP and removes the host veth', async () => {
    const { ns, id, result } = await addPod('del2');
    const ip = result.ips[0].address.split('/')[0];
    expect(allocated()).toContain(ip);
    const r = await fx.cni({ command: 'DEL', containerId: id }, conf());
    expect(r.code, r.stdout).toBe(0);
    expect(allocated()).not.toContain(ip);
    expect(await links(fx.node)).not.toContain(result.interfaces[0].name);
    expect(await ipv4Addresses(ns)).toEqual([]); // deleting the host end took the pod end with it
  });

  it('works after the netns is gone', async () => {
    const { ns, id, result } = await addPod('del3');
    await fx.lab.remove(ns);
    const r = await fx.cni({ command: 'DEL', containerId: id, netns: fx.lab.path(ns) }, conf());
    expect(r.code, r.stdout).toBe(0);
    expect(allocated()).not.toContain(result.ips[0].address.split('/')[0]);
  });
});

describe('GC', () => {
  it('releases every allocation not in cni.dev/valid-attachments, and its host veth', async () => {
    const gcConf = (valid: unknown) => conf({ name: 'gcnet', bridge: 'br-gc', subnet: '10.241.9.0/24', 'cni.dev/valid-attachments': valid });
    const pods = [];
    for (const n of ['g1', 'g2', 'g3']) {
      const ns = await fx.pod(n);
      const r = await fx.cni({ command: 'ADD', containerId: `ctr-${n}`, netns: fx.lab.path(ns) }, gcConf(undefined));
      expect(r.code, r.stdout).toBe(0);
      pods.push({ ns, result: r.json });
    }
    const r = await fx.cni(
      { command: 'GC' },
      gcConf([
        { containerID: 'ctr-g1', ifname: 'eth0' },
        { containerID: 'ctr-gone', ifname: 'eth0' },
      ]),
    );
    expect(r.code, r.stdout).toBe(0);
    const store = readStore(join(fx.dir, 'ipam'), 'gcnet');
    expect(Object.values(store.allocations).map((a) => a.containerId)).toEqual(['ctr-g1']);
    const nodeLinks = await links(fx.node);
    expect(nodeLinks).toContain(pods[0]!.result.interfaces[0].name);
    expect(nodeLinks).not.toContain(pods[1]!.result.interfaces[0].name);
    expect(nodeLinks).not.toContain(pods[2]!.result.interfaces[0].name);
    expect(await ipv4Addresses(pods[0]!.ns)).toHaveLength(1);
  });

  it('refuses a GC without the valid list (7) or with a pre-1.1.0 config (1)', async () => {
    expect((await fx.cni({ command: 'GC' }, conf())).json.code).toBe(7);
    expect((await fx.cni({ command: 'GC' }, conf({ cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }))).json.code).toBe(1);
  });
});

describe('STATUS', () => {
  const statusConf = (extra: Record<string, unknown>) =>
    conf({ name: 'stnet', bridge: 'br-st', subnet: '10.241.7.0/30', dataDir: join(fx.dir, 'st'), ...extra });

  it('is ready before the first pod, 50 once the pool is exhausted, ready again after DEL', async () => {
    const ready = await fx.cni({ command: 'STATUS' }, statusConf({}));
    expect(ready.code, ready.stdout).toBe(0);
    expect(ready.stdout).toBe('');
    const ns = await fx.pod('st1');
    expect((await fx.cni({ command: 'ADD', containerId: 'ctr-st1', netns: fx.lab.path(ns) }, statusConf({}))).code).toBe(0);
    const full = await fx.cni({ command: 'STATUS' }, statusConf({}));
    expect(full.json).toMatchObject({ code: 50 });
    expect(full.json.msg).toMatch(/no free address in 10.241.7.0\/30/);
    const ns2 = await fx.pod('st2');
    const refused = await fx.cni({ command: 'ADD', containerId: 'ctr-st2', netns: fx.lab.path(ns2) }, statusConf({}));
    expect(refused.json).toMatchObject({ code: 101 });
    expect(await links(ns2)).toEqual(['lo']);
    expect((await fx.cni({ command: 'DEL', containerId: 'ctr-st1', netns: fx.lab.path(ns) }, statusConf({}))).code).toBe(0);
    expect((await fx.cni({ command: 'STATUS' }, statusConf({}))).code).toBe(0);
  });

  it('reports 51 when the bridge carrying pods is down, 50 for a corrupt store', async () => {
    const dataDir = join(fx.dir, 'st51');
    const c = statusConf({ name: 'st51', bridge: 'br-st51', subnet: '10.241.8.0/24', dataDir });
    const ns = await fx.pod('st3');
    expect((await fx.cni({ command: 'ADD', containerId: 'ctr-st3', netns: fx.lab.path(ns) }, c)).code).toBe(0);
    await fx.lab.exec(fx.node, ['ip', 'link', 'set', 'br-st51', 'down']);
    expect((await fx.cni({ command: 'STATUS' }, c)).json).toMatchObject({ code: 51 });
    await fx.lab.exec(fx.node, ['ip', 'link', 'set', 'br-st51', 'up']);
    expect((await fx.cni({ command: 'STATUS' }, c)).code).toBe(0);
    const storeFile = join(dataDir, 'st51.json');
    writeFileSync(storeFile, '{"version":1,"network":"st51","allocations":');
    const corrupt = await fx.cni({ command: 'STATUS' }, c);
    expect(corrupt.json).toMatchObject({ code: 50 });
    expect(corrupt.json.msg).toContain(storeFile);
  });
});

describe('STATUS with a foreign device', () => {
  it('reports 50 when the bridge name is taken by a device that is not a bridge', async () => {
    await fx.lab.exec(fx.node, ['ip', 'link', 'add', 'br-notbr', 'type', 'veth', 'peer', 'name', 'br-notbr-p']);
    const r = await fx.cni({ command: 'STATUS' }, conf({ name: 'notbr', bridge: 'br-notbr', dataDir: join(fx.dir, 'notbr') }));
    expect(r.json).toMatchObject({ code: 50 });
    expect(r.json.msg).toMatch(/br-notbr exists but is a veth device/);
    await fx.lab.exec(fx.node, ['ip', 'link', 'del', 'br-notbr']);
  });
});

describe('log', () => {
  it('has one structured line per call, without the configuration', async () => {
    const lines = readFileSync(join(fx.dir, 'cni.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(20);
    const add = lines.find((l) => l.cmd === 'ADD' && l.containerId === 'ctr-a1');
    expect(add).toMatchObject({ ok: true, network: NET, ifname: 'eth0', ips: ['10.241.1.2/24'] });
    expect(typeof add.ms).toBe('number');
    const failed = lines.find((l) => l.cmd === 'CHECK' && !l.ok);
    expect(failed).toMatchObject({ code: 103 });
    expect(JSON.stringify(lines)).not.toContain('"subnet"');
  });
});
