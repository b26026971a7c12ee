// The plugin SIGKILLed at random moments of ADD (at least 50 kills): the store must always
// parse and never hold an address twice, the lock must never stay taken (the next ADD goes
// through at once), and DEL and GC must reclaim everything the killed ADDs left.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cniEnv, cniFixture, links, PLUGIN, type CniFixture } from '../helpers/cni.ts';

let fx: CniFixture;
const NET = 'crashnet';
const KILLS = 50;

const conf = () => ({
  cniVersion: '1.1.0',
  name: NET,
  type: 'ipsec-cni',
  bridge: 'br-crash',
  subnet: '10.243.0.0/22',
  dataDir: join(fx.dir, 'ipam'),
  logFile: join(fx.dir, 'cni.log'),
});

beforeAll(async () => {
  fx = await cniFixture('cnik');
});
afterAll(() => fx?.cleanup());

/** Starts ADD and SIGKILLs it after `delayMs`; resolves true if the kill landed before it exited. */
function addAndKill(id: string, netns: string, delayMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', fx.node, PLUGIN], {
      env: cniEnv({ command: 'ADD', containerId: id, netns }),
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    fx.lab.track(child.pid!);
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(conf()));
    // `ip netns exec` execs the plugin in place, so this PID is the plugin itself.
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal === 'SIGKILL');
    });
  });
}

function storeAddresses(): string[] {
  let text: string;
  try {
    text = readFileSync(join(fx.dir, 'ipam', `${NET}.json`), 'utf8');
  } catch {
    return [];
  }
  const store = JSON.parse(text); // must always parse
  const owners = Object.values(store.allocations as Record<string, { containerId: string; ifname: string }>).map((a) => `${a.containerId}/${a.ifname}`);
  expect(new Set(owners).size, 'one attachment holds two addresses').toBe(owners.length);
  return Object.keys(store.allocations);
}

it(`survives ${KILLS} SIGKILLs at random points of ADD; DEL and GC reclaim everything`, async () => {
  // Kills are spread from just before the plugin's own work starts (a VERSION call costs the
  // same start-up) to just after a normal ADD ends, so they land in every phase of the work.
  // Both durations are re-measured on every round (the machine's load drifts while other
  // tests run), and the window follows the median of the last few rounds.
  const survivors: { id: string; ns: string }[] = [];
  const addTimes: number[] = [];
  const startTimes: number[] = [];
  const timedAdd = async (id: string) => {
    const ns = await fx.pod(id);
    let t0 = performance.now();
    const r = await fx.cni({ command: 'ADD', containerId: id, netns: fx.lab.path(ns) }, conf());
    addTimes.push(performance.now() - t0);
    t0 = performance.now();
    await fx.cni({ command: 'VERSION' }, '');
    startTimes.push(performance.now() - t0);
    survivors.push({ id, ns });
    return r;
  };
  const recent = (xs: number[]) => {
    const last = xs.slice(-5).sort((a, b) => a - b);
    return last[Math.floor(last.length / 2)]!;
  };
  expect((await timedAdd('warm')).code).toBe(0); // creates the bridge
  addTimes.length = startTimes.length = 0;

  const killed: { id: string; ns: string }[] = [];
  let window = [0, 0];
  for (let i = 0; killed.length < KILLS; i++) {
    expect(i, 'too few kills landed during ADD').toBeLessThan(KILLS * 4);
    // The lock must not outlive its holder: a normal ADD after each kill succeeds.
    const ok = await timedAdd(`normal${i}`);
    expect(ok.code, ok.stdout).toBe(0);
    expect(storeAddresses()).toContain(ok.json.ips[0].address.split('/')[0]);

    window = [0.7 * recent(startTimes), 1.1 * recent(addTimes)];
    const ns = await fx.pod(`k${i}`);
    const id = `killed${i}`;
    if (await addAndKill(id, fx.lab.path(ns), window[0]! + Math.random() * Math.max(1, window[1]! - window[0]!))) killed.push({ id, ns });
    else survivors.push({ id, ns }); // finished before the kill: a normal pod
    storeAddresses();
  }
  const addMs = recent(addTimes);
  const [from, to] = window as [number, number];

  // The kills must have hit every phase, including after the address was stored (else
  // there was nothing to reclaim and this test would prove little).
  const leftInStore = JSON.parse(readFileSync(join(fx.dir, 'ipam', `${NET}.json`), 'utf8'));
  const leftOwners = new Set(Object.values(leftInStore.allocations as Record<string, { containerId: string }>).map((a) => a.containerId));
  const withAddress = killed.filter((k) => leftOwners.has(k.id)).length;
  const nodeVeths = (await links(fx.node)).filter((l) => l.startsWith('veth')).length;
  console.log(
    `crash: ${killed.length} kills between ${from.toFixed(1)} and ${to.toFixed(1)} ms, ${withAddress} after the address was stored, ${nodeVeths - survivors.length} left a veth; ADD took ${addMs.toFixed(1)} ms`,
  );
  expect(withAddress).toBeGreaterThan(0);
  expect(withAddress).toBeLessThan(killed.length);

  // Half of the killed pods are cleaned by DEL (as a runtime would after a failed ADD) …
  const half = killed.slice(0, KILLS / 2);
  for (const k of half) {
    const r = await fx.cni({ command: 'DEL', containerId: k.id, netns: fx.lab.path(k.ns) }, conf());
    expect(r.code, r.stdout).toBe(0);
  }
  // … the rest by GC, which knows only the survivors.
  const valid = survivors.map((s) => ({ containerID: s.id, ifname: 'eth0' }));
  const gc = await fx.cni({ command: 'GC' }, { ...conf(), 'cni.dev/valid-attachments': valid });
  expect(gc.code, gc.stdout).toBe(0);

  const store = JSON.parse(readFileSync(join(fx.dir, 'ipam', `${NET}.json`), 'utf8'));
  const owners = Object.values(store.allocations as Record<string, { containerId: string }>)
    .map((a) => a.containerId)
    .sort();
  expect(owners).toEqual(survivors.map((s) => s.id).sort());
  const veths = (await links(fx.node)).filter((l) => l.startsWith('veth'));
  expect(veths).toHaveLength(survivors.length);

  // Finally every survivor is deleted: nothing is left.
  for (const s of survivors) expect((await fx.cni({ command: 'DEL', containerId: s.id, netns: fx.lab.path(s.ns) }, conf())).code).toBe(0);
  expect(storeAddresses()).toEqual([]);
  expect(await links(fx.node)).toEqual(['lo', 'br-crash']);
}, 180_000);
