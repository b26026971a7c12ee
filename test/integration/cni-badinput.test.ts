// Malformed configurations and environments (more than 50): each must produce the spec's
// error JSON with the right code on stdout, a non-zero exit, and leave no veth, no bridge
// and no reservation behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cniFixture, links, type CniFixture } from '../helpers/cni.ts';

let fx: CniFixture;
let podNs: string;
let podPath: string;
const NET = 'badnet';

const base = () => ({
  cniVersion: '1.1.0',
  name: NET,
  type: 'ipsec-cni',
  bridge: 'br-bad',
  subnet: '10.244.1.0/24',
  dataDir: join(fx.dir, 'ipam'),
  logFile: join(fx.dir, 'cni.log'),
});
const okEnv = () => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bad-ctr', CNI_NETNS: podPath, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' });

interface Case {
  name: string;
  /** stdin: an object (merged over the valid config), null to drop keys, or a raw string */
  conf?: Record<string, unknown> | string;
  drop?: string[];
  env?: Record<string, string | undefined>;
  code: number;
  msg?: RegExp;
  setup?: () => void | Promise<void>;
}

/** Writes <dataDir>/<file>.json holding a store for `network` (which may differ from `file`). */
const prefilledStore =
  (file: string, allocations: Record<string, unknown>, network = file) =>
  () => {
    mkdirSync(join(fx.dir, 'ipam'), { recursive: true });
    writeFileSync(join(fx.dir, 'ipam', `${file}.json`), JSON.stringify({ version: 1, network, allocations }));
  };

const cases: Case[] = [
  // 6: not decodable
  { name: 'empty stdin', conf: '', code: 6 },
  { name: 'not JSON', conf: 'cniVersion: 1.0.0', code: 6 },
  { name: 'truncated JSON', conf: '{"cniVersion":"1.0.0","name":', code: 6 },
  { name: 'JSON array', conf: '[]', code: 6 },
  { name: 'JSON number', conf: '42', code: 6 },
  { name: 'JSON null', conf: 'null', code: 6 },
  { name: 'prevResult ips not a list', conf: { prevResult: { ips: 'x' } }, code: 6 },
  { name: 'prevResult 0.2.0 shape', conf: { prevResult: { ip4: { ip: '10.0.0.2/24' } } }, code: 6 },
  // 1: version
  { name: 'cniVersion missing', drop: ['cniVersion'], code: 1, msg: /missing/ },
  { name: 'cniVersion 0.1.0', conf: { cniVersion: '0.1.0' }, code: 1 },
  { name: 'cniVersion 0.2.0', conf: { cniVersion: '0.2.0' }, code: 1 },
  { name: 'cniVersion 2.0.0', conf: { cniVersion: '2.0.0' }, code: 1 },
  { name: 'cniVersion 1.2.0', conf: { cniVersion: '1.2.0' }, code: 1 },
  { name: 'cniVersion a number', conf: { cniVersion: 1 }, code: 1 },
  { name: 'cniVersion "1.0"', conf: { cniVersion: '1.0' }, code: 1 },
  { name: 'CHECK with a 0.3.1 config', conf: { cniVersion: '0.3.1' }, env: { CNI_COMMAND: 'CHECK' }, code: 1, msg: /does not allow CHECK/ },
  { name: 'GC with a 1.0.0 config', conf: { cniVersion: '1.0.0' }, env: { CNI_COMMAND: 'GC' }, code: 1 },
  { name: 'STATUS with a 0.4.0 config', conf: { cniVersion: '0.4.0' }, env: { CNI_COMMAND: 'STATUS' }, code: 1 },
  // 7: invalid field
  { name: 'name missing', drop: ['name'], code: 7, msg: /'name'/ },
  { name: 'name empty', conf: { name: '' }, code: 7 },
  { name: 'name with a path', conf: { name: '../../etc/passwd' }, code: 7 },
  { name: 'name a number', conf: { name: 7 }, code: 7 },
  { name: 'subnet missing', drop: ['subnet'], code: 7, msg: /'subnet' is required/ },
  { name: 'subnet without prefix', conf: { subnet: '10.244.1.0' }, code: 7 },
  { name: 'subnet prefix 33', conf: { subnet: '10.244.1.0/33' }, code: 7 },
  { name: 'subnet octet 300', conf: { subnet: '10.300.1.0/24' }, code: 7 },
  { name: 'subnet host bits set', conf: { subnet: '10.244.1.7/24' }, code: 7, msg: /did you mean/ },
  { name: 'subnet /31', conf: { subnet: '10.244.1.0/31' }, code: 7 },
  { name: 'subnet /32', conf: { subnet: '10.244.1.1/32' }, code: 7 },
  { name: 'subnet IPv6', conf: { subnet: 'fd00::/64' }, code: 7 },
  { name: 'subnet a number', conf: { subnet: 5 }, code: 7 },
  { name: 'subnet garbage', conf: { subnet: 'ten/24' }, code: 7 },
  { name: 'gateway outside the subnet', conf: { gateway: '10.244.2.1' }, code: 7 },
  { name: 'gateway = network address', conf: { gateway: '10.244.1.0' }, code: 7 },
  { name: 'gateway = broadcast', conf: { gateway: '10.244.1.255' }, code: 7 },
  { name: 'gateway not an address', conf: { gateway: 'router' }, code: 7 },
  { name: 'bridge name too long', conf: { bridge: 'br-much-too-long' }, code: 7 },
  { name: 'bridge name with a space', conf: { bridge: 'br bad' }, code: 7 },
  { name: 'bridge a number', conf: { bridge: 1 }, code: 7 },
  { name: 'mtu a string', conf: { mtu: '1400' }, code: 7 },
  { name: 'mtu too small', conf: { mtu: 10 }, code: 7 },
  { name: 'mtu too large', conf: { mtu: 70000 }, code: 7 },
  { name: 'mtu fractional', conf: { mtu: 1400.5 }, code: 7 },
  { name: 'hairpinMode a string', conf: { hairpinMode: 'true' }, code: 7 },
  { name: 'isDefaultGateway a number', conf: { isDefaultGateway: 1 }, code: 7 },
  { name: 'dataDir relative', conf: { dataDir: 'var/lib/x' }, code: 7 },
  { name: 'logFile relative', conf: { logFile: 'cni.log' }, code: 7 },
  { name: 'ipam a string', conf: { ipam: 'host-local' }, drop: ['subnet'], code: 7 },
  { name: 'ipam without type', conf: { ipam: {} }, drop: ['subnet'], code: 7 },
  { name: 'ipam type with a path', conf: { ipam: { type: '../../bin/sh' } }, drop: ['subnet'], code: 7 },
  { name: 'ipam together with subnet', conf: { ipam: { type: 'host-local' } }, code: 7 },
  { name: 'ipam plugin not in CNI_PATH', conf: { ipam: { type: 'no-such-ipam' } }, drop: ['subnet'], code: 7, msg: /not found in CNI_PATH/ },
  { name: 'GC without valid attachments', env: { CNI_COMMAND: 'GC' }, code: 7 },
  { name: 'GC valid attachments not a list', conf: { 'cni.dev/valid-attachments': { a: 1 } }, env: { CNI_COMMAND: 'GC' }, code: 7 },
  { name: 'GC attachment without ifname', conf: { 'cni.dev/valid-attachments': [{ containerID: 'a' }] }, env: { CNI_COMMAND: 'GC' }, code: 7 },
  { name: 'CHECK without prevResult', env: { CNI_COMMAND: 'CHECK' }, code: 7 },
  // 4: environment
  { name: 'CNI_COMMAND missing', env: { CNI_COMMAND: undefined }, code: 4 },
  { name: 'CNI_COMMAND unknown', env: { CNI_COMMAND: 'GET' }, code: 4 },
  { name: 'CNI_COMMAND lowercase', env: { CNI_COMMAND: 'add' }, code: 4 },
  { name: 'CNI_CONTAINERID missing', env: { CNI_CONTAINERID: undefined }, code: 4 },
  { name: 'CNI_CONTAINERID with a slash', env: { CNI_CONTAINERID: 'a/b' }, code: 4 },
  { name: 'CNI_CONTAINERID starting with a dot', env: { CNI_CONTAINERID: '.hidden' }, code: 4 },
  { name: 'CNI_NETNS missing on ADD', env: { CNI_NETNS: undefined }, code: 4, msg: /CNI_NETNS is required/ },
  { name: 'CNI_NETNS relative', env: { CNI_NETNS: 'run/netns/x' }, code: 4 },
  { name: 'CNI_IFNAME missing', env: { CNI_IFNAME: undefined }, code: 4 },
  { name: 'CNI_IFNAME overlong', env: { CNI_IFNAME: 'eth0123456789abc' }, code: 4, msg: /not a valid interface name/ },
  { name: 'CNI_IFNAME with a space', env: { CNI_IFNAME: 'eth 0' }, code: 4 },
  { name: 'CNI_IFNAME "."', env: { CNI_IFNAME: '.' }, code: 4 },
  { name: 'CNI_IFNAME with a colon', env: { CNI_IFNAME: 'eth0:1' }, code: 4 },
  { name: 'CNI_ARGS not KEY=VALUE', env: { CNI_ARGS: 'K8S_POD_NAME' }, code: 4 },
  { name: 'CNI_PATH missing with delegated IPAM', conf: { ipam: { type: 'host-local' } }, drop: ['subnet'], env: { CNI_PATH: undefined }, code: 4 },
  { name: 'DEL without CNI_CONTAINERID', env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: undefined }, code: 4 },
  // 3: the container's netns does not exist
  { name: 'CNI_NETNS does not exist', env: { CNI_NETNS: '/run/netns/no-such-netns-here' }, code: 3 },
  // 101/102: IPAM state
  {
    name: 'subnet exhausted',
    conf: { name: 'fullnet', subnet: '10.244.9.0/30' },
    code: 101,
    msg: /no free address in 10.244.9.0\/30/,
    setup: prefilledStore('fullnet', { '10.244.9.2': { containerId: 'other', ifname: 'eth0' } }),
  },
  {
    name: 'corrupt store',
    conf: { name: 'brokennet' },
    code: 102,
    msg: /brokennet.json is corrupt/,
    setup: () => {
      mkdirSync(join(fx.dir, 'ipam'), { recursive: true });
      writeFileSync(join(fx.dir, 'ipam', 'brokennet.json'), '{"version":1,"network":"brokennet","allocations":{"10.244');
    },
  },
  {
    name: 'store of another network',
    conf: { name: 'mixnet' },
    code: 102,
    msg: /belongs to network "elsewhere"/,
    setup: prefilledStore('mixnet', {}, 'elsewhere'),
  },
  // 100: the kernel refuses (after IPAM): the address is given back, nothing is left
  { name: 'ifname already taken in the pod', env: { CNI_IFNAME: 'taken0' }, code: 100, msg: /taken0 already exists in/ },
  {
    name: 'CNI_NETNS is not a network namespace',
    env: { CNI_NETNS: '/etc/hostname' },
    code: 100,
    msg: /cannot enter network namespace \/etc\/hostname.*Invalid argument/,
  },
];

beforeAll(async () => {
  fx = await cniFixture('cnib');
  podNs = await fx.pod('pod');
  podPath = fx.lab.path(podNs);
  await fx.lab.exec(podNs, ['ip', 'link', 'add', 'taken0', 'type', 'bridge']);
});
afterAll(() => fx?.cleanup());

describe('bad input', () => {
  it('has at least 50 cases', () => expect(cases.length).toBeGreaterThanOrEqual(50));

  it.each(cases)('$name → code $code', async (c) => {
    await c.setup?.();
    let stdin: unknown = c.conf;
    if (typeof c.conf !== 'string') {
      const conf: Record<string, unknown> = { ...base(), ...(c.conf ?? {}) };
      for (const k of c.drop ?? []) delete conf[k];
      stdin = conf;
    }
    const env = { ...okEnv(), ...(c.env ?? {}) };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete (env as Record<string, unknown>)[k];
    const r = await fx.cni({ command: '', rawEnv: env as Record<string, string> }, stdin);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.json, `stdout: ${r.stdout}`).toMatchObject({ code: c.code, msg: expect.any(String) });
    expect(typeof r.json.cniVersion).toBe('string');
    if (c.msg) expect(r.json.msg).toMatch(c.msg);
    // nothing left behind: no bridge or veth on the node, only lo + our placeholder in the pod
    expect(await links(fx.node)).toEqual(['lo']);
    expect(await links(podNs)).toEqual(['lo', 'taken0']);
  });

  it('gave back every address a failed ADD had taken', () => {
    const store = JSON.parse(readFileSync(join(fx.dir, 'ipam', `${NET}.json`), 'utf8'));
    expect(store.allocations).toEqual({});
  });
});
