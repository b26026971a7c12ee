import { describe, expect, it } from 'vitest';
import { allocate, emptyStore, freeCount, release, retainOnly, type Allocation, type Pool, type StoreData } from '../../src/cni/ipam/allocator.ts';
import { parseStore } from '../../src/cni/ipam/format.ts';
import { formatIpv4, parseCidr, parseIpv4 } from '../../src/cni/ipv4.ts';
import { ErrorCode } from '../../src/cni/spec/errors.ts';

function pool(cidr: string, gateway?: string): Pool {
  const p = parseCidr(cidr);
  if (!p.ok) throw new Error(p.reason);
  return { subnet: p.cidr, gateway: gateway ? parseIpv4(gateway)! : p.cidr.network + 1 };
}

const owner = (id: string, ifname = 'eth0'): Allocation => ({ containerId: id, ifname });

function take(store: StoreData, p: Pool, id: string, ifname = 'eth0') {
  const o = allocate(store, p, owner(id, ifname));
  if (!o) throw new Error('exhausted');
  return { store: o.store, ip: formatIpv4(o.ip), created: o.created };
}

describe('allocator', () => {
  it('hands out addresses in order, skipping network and gateway', () => {
    const p = pool('10.240.1.0/24');
    let s = emptyStore('n');
    const got: string[] = [];
    for (const id of ['a', 'b', 'c']) {
      const t = take(s, p, id);
      s = t.store;
      got.push(t.ip);
    }
    expect(got).toEqual(['10.240.1.2', '10.240.1.3', '10.240.1.4']);
    expect(s.lastAllocated).toBe('10.240.1.4');
  });
  it('gives the same address to the same container+ifname (repeated ADD)', () => {
    const p = pool('10.240.1.0/24');
    const a = take(emptyStore('n'), p, 'a');
    const again = take(a.store, p, 'a');
    expect(again).toMatchObject({ ip: a.ip, created: false });
    expect(again.store).toBe(a.store);
    expect(take(a.store, p, 'a', 'net1').ip).not.toBe(a.ip);
  });
  it('does not hand back a just-freed address first (rotation)', () => {
    const p = pool('10.240.1.0/24');
    let s = take(emptyStore('n'), p, 'a').store; // .2
    s = take(s, p, 'b').store; // .3
    s = release(s, 'a', 'eth0').store;
    expect(take(s, p, 'c').ip).toBe('10.240.1.4');
  });
  it('wraps around to free addresses below the cursor', () => {
    const p = pool('10.0.0.0/29'); // .1 gw, .2-.6 usable, .7 broadcast
    let s = emptyStore('n');
    for (const id of ['a', 'b', 'c', 'd', 'e']) s = take(s, p, id).store;
    expect(allocate(s, p, owner('f'))).toBeUndefined();
    s = release(s, 'b', 'eth0').store;
    expect(take(s, p, 'f').ip).toBe('10.0.0.3');
  });
  it('never hands out network, broadcast or a gateway in the middle of the range', () => {
    const p = pool('10.0.0.0/29', '10.0.0.4');
    let s = emptyStore('n');
    const got: string[] = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      const t = take(s, p, id);
      s = t.store;
      got.push(t.ip);
    }
    expect(got).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.5', '10.0.0.6']);
    expect(allocate(s, p, owner('x'))).toBeUndefined();
  });
  it('starts at the beginning when the cursor is outside the pool (subnet changed)', () => {
    const p = pool('10.240.2.0/24');
    const s: StoreData = { ...emptyStore('n'), lastAllocated: '10.240.1.77' };
    expect(take(s, p, 'a').ip).toBe('10.240.2.2');
  });
  it('counts free addresses', () => {
    const p = pool('10.0.0.0/29');
    expect(freeCount(emptyStore('n'), p)).toBe(5);
    expect(freeCount(take(emptyStore('n'), p, 'a').store, p)).toBe(4);
  });
  it('release is idempotent and leaves other attachments alone', () => {
    const p = pool('10.240.1.0/24');
    let s = take(emptyStore('n'), p, 'a').store;
    s = take(s, p, 'a', 'net1').store;
    const r = release(s, 'a', 'eth0');
    expect(r.released.map(([ip]) => ip)).toEqual(['10.240.1.2']);
    expect(Object.keys(r.store.allocations)).toEqual(['10.240.1.3']);
    const again = release(r.store, 'a', 'eth0');
    expect(again.released).toEqual([]);
    expect(again.store).toBe(r.store);
  });
  it('GC keeps exactly the valid attachments', () => {
    const p = pool('10.240.1.0/24');
    let s = emptyStore('n');
    for (const id of ['a', 'b', 'c']) s = take(s, p, id).store;
    const r = retainOnly(s, [
      { containerId: 'b', ifname: 'eth0' },
      { containerId: 'zzz', ifname: 'eth0' },
    ]);
    expect(Object.values(r.store.allocations).map((a) => a.containerId)).toEqual(['b']);
    expect(r.released.map(([, a]) => a.containerId).sort()).toEqual(['a', 'c']);
  });
});

describe('store file validation', () => {
  const path = '/var/lib/cni/ipsec-cni/n.json';
  it('accepts what the store writes', () => {
    const s = take(emptyStore('n'), pool('10.240.1.0/24'), 'a').store;
    expect(parseStore(JSON.stringify(s), path, 'n')).toEqual(s);
  });
  it.each([
    ['', /not JSON/],
    ['{"version":1,"network":"n","allocations":{', /not JSON/],
    ['[]', /not a JSON object/],
    ['{"version":2,"network":"n","allocations":{}}', /unknown store version/],
    ['{"version":1,"network":"other","allocations":{}}', /belongs to network "other"/],
    ['{"version":1,"network":"n"}', /'allocations' is not an object/],
    ['{"version":1,"network":"n","allocations":{"x":{"containerId":"a","ifname":"e"}}}', /'x' is not an IPv4/],
    ['{"version":1,"network":"n","allocations":{"10.0.0.2":{"ifname":"e"}}}', /lacks containerId/],
    ['{"version":1,"network":"n","lastAllocated":7,"allocations":{}}', /lastAllocated/],
  ])('refuses %j with an error naming the file', (text, why) => {
    try {
      parseStore(text, path, 'n');
      expect.unreachable();
    } catch (e) {
      expect((e as { code: number }).code).toBe(ErrorCode.StoreCorrupt);
      expect((e as Error).message).toContain(path);
      expect((e as Error).message).toMatch(why);
    }
  });
});
