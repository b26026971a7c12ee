import { describe, expect, it } from 'vitest';
import { addResult, planPod } from '../../src/cni/commands/add.ts';
import { expectedFromPrev, nodeProblems, podProblems } from '../../src/cni/commands/check.ts';
import { staleVeths } from '../../src/cni/commands/gc.ts';
import { validateConfig } from '../../src/cni/config.ts';
import { parseNetDev, toLinkJson, type LinkJson } from '../../src/cni/kernel.ts';
import { hostVethAlias, hostVethName, isValidIfname, randomMac } from '../../src/cni/names.ts';
import { parseInvocation } from '../../src/cni/spec/env.ts';

const config = validateConfig({ cniVersion: '1.1.0', name: 'pods', subnet: '10.240.1.0/24', mtu: 1400, hairpinMode: true });
const inv = parseInvocation({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p1', CNI_IFNAME: 'eth0' });
const choices = { bridgeExists: false, bridgeMac: '02:00:00:00:00:0b', hostMac: '02:00:00:00:00:0a', containerMac: '02:00:00:00:00:0c' };
const ipam = { ips: [{ address: '10.240.1.2/24', gateway: '10.240.1.1' }] };

describe('names', () => {
  it('derives a unique, valid host veth name per container and interface', () => {
    const a = hostVethName('pod-0001', 'eth0');
    expect(a).toMatch(/^veth[0-9a-f]{11}$/);
    expect(isValidIfname(a)).toBe(true);
    expect(hostVethName('pod-0001', 'eth0')).toBe(a);
    expect(hostVethName('pod-0002', 'eth0')).not.toBe(a);
    expect(hostVethName('pod-0001', 'net1')).not.toBe(a);
    expect(hostVethAlias('c', 'eth0')).toBe('ipsec-cni:c/eth0');
  });
  it('makes locally administered unicast MACs', () => {
    expect(randomMac(() => Uint8Array.from([0xff, 1, 2, 3, 4, 5]))).toBe('fe:01:02:03:04:05');
    expect(randomMac(() => Uint8Array.from([0x00, 1, 2, 3, 4, 5]))).toBe('02:01:02:03:04:05');
  });
});

describe('ADD planning', () => {
  it('plans the bridge MAC only when the bridge is missing, the gateway, the veth and the routes', () => {
    const plan = planPod(config, inv, ipam, choices);
    expect(plan).toMatchObject({
      bridge: 'ipsec-br01',
      bridgeMac: '02:00:00:00:00:0b',
      gatewayCidrs: ['10.240.1.1/24'],
      hostMac: '02:00:00:00:00:0a',
      alias: 'ipsec-cni:c1/eth0',
      ifname: 'eth0',
      containerMac: '02:00:00:00:00:0c',
      netns: '/run/netns/p1',
      mtu: 1400,
      hairpin: true,
      addresses: ['10.240.1.2/24'],
      routes: [{ dst: '0.0.0.0/0', gw: '10.240.1.1' }],
    });
    expect(plan.hostVeth).toBe(hostVethName('c1', 'eth0'));
    expect(planPod(config, inv, ipam, { ...choices, bridgeExists: true }).bridgeMac).toBeUndefined();
  });
  it('uses IPAM routes, derives a missing gateway like the reference bridge, adds no second default', () => {
    const plan = planPod(
      config,
      inv,
      { ips: [{ address: '10.9.0.7/16' }], routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.9.0.254' }] },
      choices,
    );
    expect(plan.gatewayCidrs).toEqual(['10.9.0.1/16']);
    expect(plan.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '10.9.0.1' },
      { dst: '192.168.0.0/16', gw: '10.9.0.254' },
    ]);
  });
  it('installs no default route when isDefaultGateway is false', () => {
    const c = validateConfig({ ...config.raw, isDefaultGateway: false });
    expect(planPod(c, inv, ipam, choices).routes).toEqual([]);
  });
  it('builds the result: host veth, pod interface with sandbox, ips on interface 1', () => {
    const plan = planPod(config, inv, ipam, choices);
    const r = addResult(plan, ipam, config);
    expect(r.interfaces).toEqual([
      { name: plan.hostVeth, mac: '02:00:00:00:00:0a' },
      { name: 'eth0', mac: '02:00:00:00:00:0c', mtu: 1400, sandbox: '/run/netns/p1' },
    ]);
    expect(r.ips).toEqual([{ address: '10.240.1.2/24', gateway: '10.240.1.1', interface: 1 }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.240.1.1' }]);
  });
});

describe('kernel views', () => {
  it('reads link names from /proc/net/dev', () => {
    const text = 'Inter-|   Receive\n face |bytes\n    lo: 0 0\nipsec-br01: 1 2\nveth0123456789a: 3 4\n';
    expect([...parseNetDev(text)]).toEqual(['lo', 'ipsec-br01', 'veth0123456789a']);
  });
  it('turns a netlink link into the JSON view CHECK and GC use', () => {
    const link = { index: 3, name: 'vethx', up: true, mac: '02:00:00:00:00:01', mtu: 1400, master: 2, alias: 'ipsec-cni:a/eth0', kind: 'veth' };
    expect(
      toLinkJson(link, new Map([[2, 'br']]), [
        { index: 3, address: '10.0.0.2', prefix: 24 },
        { index: 9, address: '10.9.9.9', prefix: 8 },
      ]),
    ).toEqual({
      ifname: 'vethx',
      flags: ['UP'],
      address: '02:00:00:00:00:01',
      mtu: 1400,
      master: 'br',
      ifalias: 'ipsec-cni:a/eth0',
      linkinfo: { info_kind: 'veth' },
      addr_info: [{ family: 'inet', local: '10.0.0.2', prefixlen: 24 }],
    });
  });
});

describe('CHECK comparisons', () => {
  const prev = {
    interfaces: [
      { name: 'vethx', mac: '02:00:00:00:00:01' },
      { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/p1' },
    ],
    ips: [{ address: '10.240.1.2/24', gateway: '10.240.1.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.240.1.1' }],
  };
  const expected = expectedFromPrev(prev, 'eth0', '/run/netns/p1', 1400);
  const link: LinkJson = {
    ifname: 'eth0',
    address: '02:00:00:00:00:02',
    mtu: 1400,
    flags: ['UP'],
    linkinfo: { info_kind: 'veth' },
    addr_info: [{ family: 'inet', local: '10.240.1.2', prefixlen: 24 }],
  };
  const routes = [{ dst: 'default', gateway: '10.240.1.1' }];
  it('is satisfied by a matching interface', () => {
    expect(podProblems(expected, link, routes)).toEqual([]);
  });
  it('reports a removed address, a missing route, another MAC, a down link', () => {
    expect(podProblems(expected, { ...link, addr_info: [] }, routes)).toEqual(['eth0 lacks address 10.240.1.2/24 (has none)']);
    expect(podProblems(expected, link, [])).toEqual(['route to 0.0.0.0/0 via 10.240.1.1 on eth0 is missing']);
    expect(podProblems(expected, { ...link, address: '02:00:00:00:00:09' }, routes)[0]).toMatch(/MAC/);
    expect(podProblems(expected, { ...link, flags: [] }, routes)).toEqual(['eth0 is down']);
    expect(podProblems(expected, undefined, routes)).toEqual(["interface eth0 does not exist in the pod's netns"]);
  });
  it('needs the interface in prevResult', () => {
    expect(() => expectedFromPrev(prev, 'net1', '/run/netns/p1', 1400)).toThrow(/no interface net1/);
  });
  it('checks the host side and the bridge', () => {
    const host: LinkJson = { ifname: 'vethx', master: 'br', flags: ['UP'] };
    const bridge: LinkJson = { ifname: 'br', flags: ['UP'], addr_info: [{ family: 'inet', local: '10.240.1.1', prefixlen: 24 }] };
    expect(nodeProblems('vethx', host, 'br', bridge, ['10.240.1.1'])).toEqual([]);
    expect(nodeProblems('vethx', { ...host, master: undefined }, 'br', bridge, ['10.240.1.1'])).toEqual(['vethx is attached to nothing, not br']);
    expect(nodeProblems('vethx', undefined, 'br', undefined, [])).toEqual(['host interface vethx does not exist', 'bridge br does not exist']);
  });
});

describe('GC selection', () => {
  it('picks only this bridge’s veths whose attachment is not valid', () => {
    const veths: LinkJson[] = [
      { ifname: 'v1', master: 'br', ifalias: 'ipsec-cni:a/eth0' },
      { ifname: 'v2', master: 'br', ifalias: 'ipsec-cni:b/eth0' },
      { ifname: 'v3', master: 'other', ifalias: 'ipsec-cni:c/eth0' },
      { ifname: 'v5', master: 'br', ifalias: 'someone-else' },
    ];
    expect(staleVeths(veths, 'br', [{ containerId: 'a', ifname: 'eth0' }])).toEqual(['v2']);
  });
  it('recognises a veth whose ADD died before naming it by its derived name', () => {
    const valid = [{ containerId: 'a', ifname: 'eth0' }];
    const veths: LinkJson[] = [
      { ifname: hostVethName('a', 'eth0'), master: 'br' }, // valid, alias not set yet
      { ifname: hostVethName('dead', 'eth0'), master: 'br' }, // killed ADD
      { ifname: 'vethmanual', master: 'br' }, // not a name we make
    ];
    expect(staleVeths(veths, 'br', valid)).toEqual([hostVethName('dead', 'eth0')]);
  });
});
