// Many parallel invocations of the built plugin on one network: 64 ADDs at once (also racing
// to create the bridge), then rounds mixing ADDs and DELs; after every round the store, the
// results and the kernel must agree, with no address given twice.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { join } from 'node:path';
import { cniFixture, ipv4Addresses, links, readStore, type CniFixture, type CniOutcome } from '../helpers/cni.ts';

let fx: CniFixture;
const NET = 'concnet';
const PODS = 128;
const pods: string[] = [];
/** pod index → address its ADD returned, while added */
const live = new Map<number, string>();

const conf = () => ({
  cniVersion: '1.1.0',
  name: NET,
  type: 'ipsec-cni',
  bridge: 'br-conc',
  subnet: '10.242.0.0/23',
  dataDir: join(fx.dir, 'ipam'),
  logFile: join(fx.dir, 'cni.log'),
});

beforeAll(async () => {
  fx = await cniFixture('cnic');
  for (let i = 0; i < PODS; i += 16) {
    await Promise.all(Array.from({ length: 16 }, (_, k) => fx.pod(`p${i + k}`))).then((names) => pods.push(...names));
  }
});
afterAll(() => fx?.cleanup());

const add = (i: number) => fx.cni({ command: 'ADD', containerId: `ctr${i}`, netns: fx.lab.path(pods[i]!) }, conf());
const del = (i: number) => fx.cni({ command: 'DEL', containerId: `ctr${i}`, netns: fx.lab.path(pods[i]!) }, conf());

async function round(adds: number[], dels: number[]): Promise<void> {
  const ops: Promise<[string, number, CniOutcome]>[] = [
    ...adds.map((i) => add(i).then((r): [string, number, CniOutcome] => ['ADD', i, r])),
    ...dels.map((i) => del(i).then((r): [string, number, CniOutcome] => ['DEL', i, r])),
  ];
  for (const [cmd, i, r] of await Promise.all(ops)) {
    expect(r.code, `${cmd} ${i}: ${r.stdout}${r.stderr}`).toBe(0);
    if (cmd === 'ADD') live.set(i, r.json.ips[0].address);
    else live.delete(i);
  }
  await verify();
}

/** Store, results and kernel agree; no address twice. */
async function verify(): Promise<void> {
  const expected = [...live.values()];
  expect(new Set(expected).size, 'duplicate address handed out').toBe(expected.length);
  const store = readStore(join(fx.dir, 'ipam'), NET).allocations;
  expect(Object.keys(store).sort()).toEqual(expected.map((a) => a.split('/')[0]).sort());
  for (const [i, addr] of live) expect(store[addr.split('/')[0]!]).toMatchObject({ containerId: `ctr${i}`, ifname: 'eth0' });
  const kernel = await Promise.all(pods.map(async (ns, i) => [i, await ipv4Addresses(ns)] as const));
  for (const [i, addrs] of kernel) expect(addrs, `pod ${i}`).toEqual(live.has(i) ? [live.get(i)] : []);
  const veths = (await links(fx.node)).filter((l) => l.startsWith('veth'));
  expect(veths).toHaveLength(live.size);
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

it('64 parallel ADDs on a fresh node, then 192 more mixed operations: no duplicate, store consistent, all free at the end', async () => {
  await round(range(0, 64), []); // 64 ADDs at once, racing to create the bridge
  await round(range(64, 96), range(0, 32)); // 32 ADDs ∥ 32 DELs
  await round(range(96, 128), range(32, 64)); // 32 ADDs ∥ 32 DELs
  await round([], range(64, 128)); // 64 DELs
  expect(live.size).toBe(0);
  expect(readStore(join(fx.dir, 'ipam'), NET).allocations).toEqual({});
  expect(await links(fx.node)).toEqual(['lo', 'br-conc']);
}, 120_000);
