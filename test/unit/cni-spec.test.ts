import { describe, expect, it } from 'vitest';
import { compareVersions, highestCommonVersion, isSupportedVersion, versionAllows } from '../../src/cni/spec/versions.ts';
import { formatResult, parseResult, type Result } from '../../src/cni/spec/result.ts';
import { CniError, ErrorCode, asCniError, errorResult } from '../../src/cni/spec/errors.ts';
import { parseCniArgs, parseInvocation } from '../../src/cni/spec/env.ts';

const result: Result = {
  interfaces: [
    { name: 'vethabc', mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1400, sandbox: '/run/netns/x' },
  ],
  ips: [{ address: '10.240.1.2/24', gateway: '10.240.1.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.240.1.1', mtu: 1400 }],
};

describe('versions', () => {
  it('orders versions numerically, not lexically', () => {
    expect(compareVersions('0.10.0', '0.4.0')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
    expect(compareVersions('garbage', '0.1.0')).toBeLessThan(0);
  });
  it('supports 0.3.0 … 1.1.0 and nothing older or newer', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) expect(isSupportedVersion(v)).toBe(true);
    for (const v of ['0.1.0', '0.2.0', '1.2.0', '2.0.0', '', '1.0']) expect(isSupportedVersion(v)).toBe(false);
  });
  it('gates verbs by the version that introduced them', () => {
    expect(versionAllows('0.3.1', 'CHECK')).toBe(false);
    expect(versionAllows('0.4.0', 'CHECK')).toBe(true);
    expect(versionAllows('1.0.0', 'GC')).toBe(false);
    expect(versionAllows('1.1.0', 'STATUS')).toBe(true);
    expect(versionAllows('1.1.0', 'FOO')).toBe(false);
  });
  it('finds the highest version both sides speak', () => {
    expect(highestCommonVersion(['0.4.0', '1.0.0', '1.1.0'], ['0.1.0', '0.4.0', '1.0.0'])).toBe('1.0.0');
    expect(highestCommonVersion(['1.1.0'], ['0.2.0'])).toBeUndefined();
  });
});

describe('result conversion', () => {
  it('writes 1.1.0 with interface mtu and route attributes', () => {
    const out = formatResult(result, '1.1.0') as any;
    expect(out.cniVersion).toBe('1.1.0');
    expect(out.interfaces[1].mtu).toBe(1400);
    expect(out.routes[0].mtu).toBe(1400);
    expect(out.ips[0].version).toBeUndefined();
  });
  it('drops 1.1.0-only fields for 1.0.0', () => {
    const out = formatResult(result, '1.0.0') as any;
    expect(out.interfaces[1]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x' });
    expect(out.routes[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.240.1.1' });
  });
  it('adds the per-IP version for 0.3.x/0.4.0', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      const out = formatResult({ ips: [{ address: '10.0.0.2/24' }, { address: 'fd00::2/64' }] }, v) as any;
      expect(out.ips.map((i: any) => i.version)).toEqual(['4', '6']);
      expect(out.cniVersion).toBe(v);
    }
  });
  it('reads what it writes, in every version', () => {
    for (const v of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
      const back = parseResult(formatResult(result, v), 'r');
      expect(back.ips).toEqual(result.ips);
      expect(back.interfaces?.map((i) => i.name)).toEqual(['vethabc', 'eth0']);
    }
  });
  it('rejects malformed results with the place of the problem', () => {
    expect(() => parseResult({ ips: [{ address: '10.0.0.2' }] }, 'prevResult')).toThrow(/prevResult.ips\[0\].*CIDR/);
    expect(() => parseResult({ ip4: { ip: '10.0.0.2/24' } }, 'r')).toThrow(/0\.2\.0/);
    expect(() => parseResult({ interfaces: [{ name: 'a' }], ips: [{ address: '1.2.3.4/24', interface: 3 }] }, 'r')).toThrow(/interface' 3/);
    expect(() => parseResult('x', 'r')).toThrow(CniError);
  });
});

describe('errors', () => {
  it('prints the spec error shape', () => {
    expect(errorResult(new CniError(7, 'bad', 'why'), '1.0.0')).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'bad', details: 'why' });
    expect(errorResult(new CniError(11, 'busy'), '1.1.0')).toEqual({ cniVersion: '1.1.0', code: 11, msg: 'busy' });
  });
  it('maps OS errors to I/O failure and anything else to internal', () => {
    const enoent = Object.assign(new Error('open /x: No such file or directory'), { errno: 2 });
    expect(asCniError(enoent).code).toBe(ErrorCode.IoFailure);
    expect(asCniError(new TypeError('oops')).code).toBe(ErrorCode.Internal);
    const e = new CniError(3, 'gone');
    expect(asCniError(e)).toBe(e);
  });
});

describe('environment', () => {
  const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/a:/b' };
  it('parses a complete ADD environment', () => {
    const inv = parseInvocation({ ...base, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web;X=a=b' });
    expect(inv.path).toEqual(['/a', '/b']);
    expect(inv.args.get('K8S_POD_NAME')).toBe('web');
    expect(inv.args.get('X')).toBe('a=b');
  });
  it('allows DEL without CNI_NETNS, GC/STATUS with nothing', () => {
    expect(parseInvocation({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns).toBe('');
    expect(parseInvocation({ CNI_COMMAND: 'GC' }).command).toBe('GC');
    expect(parseInvocation({ CNI_COMMAND: 'STATUS' }).command).toBe('STATUS');
  });
  it.each([
    [{ ...base, CNI_COMMAND: undefined }, /CNI_COMMAND is not set/],
    [{ ...base, CNI_COMMAND: 'GET' }, /not one of/],
    [{ ...base, CNI_CONTAINERID: '' }, /CNI_CONTAINERID is required/],
    [{ ...base, CNI_CONTAINERID: '-x' }, /must start with/],
    [{ ...base, CNI_CONTAINERID: 'a b' }, /must start with/],
    [{ ...base, CNI_NETNS: '' }, /CNI_NETNS is required/],
    [{ ...base, CNI_NETNS: 'relative' }, /absolute/],
    [{ ...base, CNI_IFNAME: 'a-very-long-ifname' }, /not a valid interface name/],
    [{ ...base, CNI_IFNAME: 'eth/0' }, /not a valid interface name/],
    [{ ...base, CNI_IFNAME: '..' }, /not a valid interface name/],
    [{ ...base, CNI_ARGS: 'novalue' }, /KEY=VALUE/],
  ])('rejects %o with code 4', (env, msg) => {
    try {
      parseInvocation(env);
      expect.unreachable();
    } catch (e) {
      expect((e as CniError).code).toBe(ErrorCode.InvalidEnvironment);
      expect((e as Error).message).toMatch(msg);
    }
  });
  it('parses empty CNI_ARGS and tolerates trailing separators', () => {
    expect(parseCniArgs('').size).toBe(0);
    expect([...parseCniArgs('A=1;;B=2;')]).toEqual([
      ['A', '1'],
      ['B', '2'],
    ]);
  });
});

describe('delegation helpers', async () => {
  const { delegateError, downgradeConfig } = await import('../../src/cni/ipam/delegate.ts');
  it('passes a delegate’s CNI error through with its code', () => {
    const e = delegateError('host-local', 'ADD', '{"code":7,"msg":"bad range","details":"x"}', '');
    expect([e.code, e.message, e.details]).toEqual([7, "IPAM plugin 'host-local' ADD: bad range", 'x']);
  });
  it('wraps output that is not a CNI error (code 104)', () => {
    const e = delegateError('infoblox', 'DEL', 'panic: oops', 'stack');
    expect(e.code).toBe(ErrorCode.DelegateFailed);
    expect(e.message).toMatch(/infoblox' DEL failed: panic: oops\s+stack/);
  });
  it('rewrites a configuration, and its prevResult, for an older delegate', () => {
    const raw = {
      cniVersion: '1.1.0',
      name: 'n',
      'cni.dev/valid-attachments': [],
      prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mtu: 1400 }], ips: [{ address: '10.0.0.2/24', interface: 0 }] },
    };
    const down = downgradeConfig(raw, '0.4.0') as any;
    expect(down.cniVersion).toBe('0.4.0');
    expect(down['cni.dev/valid-attachments']).toBeUndefined();
    expect(down.prevResult).toMatchObject({ cniVersion: '0.4.0', interfaces: [{ name: 'eth0' }], ips: [{ version: '4', address: '10.0.0.2/24' }] });
    expect(down.prevResult.interfaces[0].mtu).toBeUndefined();
    expect(raw.cniVersion).toBe('1.1.0'); // the original is untouched
  });
});
