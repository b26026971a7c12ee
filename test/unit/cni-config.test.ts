import { describe, expect, it } from 'vitest';
import { decodeConfig, logFileOf, validateConfig } from '../../src/cni/config.ts';
import { type CniError, ErrorCode } from '../../src/cni/spec/errors.ts';
import { formatIpv4 } from '../../src/cni/ipv4.ts';

const good = { cniVersion: '1.0.0', name: 'pods', type: 'ipsec-cni', subnet: '10.240.1.0/24' };

function codeOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    return (e as CniError).code;
  }
  return 0;
}

describe('config', () => {
  it('applies the documented defaults', () => {
    const c = validateConfig(good);
    expect(c).toMatchObject({ bridge: 'ipsec-br01', mtu: 1500, hairpinMode: false, isDefaultGateway: true, logFile: '/var/log/ipsec-cni.log' });
    expect(c.ipam).toMatchObject({ kind: 'builtin', dataDir: '/var/lib/cni/ipsec-cni', lockTimeoutMs: 10_000 });
    if (c.ipam.kind !== 'builtin') throw new Error('builtin expected');
    expect(formatIpv4(c.ipam.gateway)).toBe('10.240.1.1');
  });
  it('takes an explicit gateway inside the subnet', () => {
    const c = validateConfig({ ...good, gateway: '10.240.1.254' });
    expect(c.ipam.kind === 'builtin' && formatIpv4(c.ipam.gateway)).toBe('10.240.1.254');
  });
  it('delegates when ipam.type is set', () => {
    const c = validateConfig({ cniVersion: '1.0.0', name: 'n', ipam: { type: 'host-local', ranges: [] } });
    expect(c.ipam).toEqual({ kind: 'delegate', type: 'host-local' });
  });
  it('reads prevResult and the GC valid list (either key libcni sets)', () => {
    const c = validateConfig({
      ...good,
      prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.240.1.2/24' }] },
      'cni.dev/attachments': [{ containerID: 'a', ifname: 'eth0' }],
    });
    expect(c.prevResult?.ips?.[0]?.address).toBe('10.240.1.2/24');
    expect(c.validAttachments).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
  });
  it.each([
    [{ ...good, cniVersion: undefined }, ErrorCode.IncompatibleVersion],
    [{ ...good, cniVersion: '0.2.0' }, ErrorCode.IncompatibleVersion],
    [{ ...good, cniVersion: 1 }, ErrorCode.IncompatibleVersion],
    [{ ...good, name: undefined }, ErrorCode.InvalidConfig],
    [{ ...good, name: '../etc' }, ErrorCode.InvalidConfig],
    [{ ...good, subnet: undefined }, ErrorCode.InvalidConfig],
    [{ ...good, subnet: '10.240.1.0' }, ErrorCode.InvalidConfig],
    [{ ...good, subnet: '10.240.1.5/24' }, ErrorCode.InvalidConfig],
    [{ ...good, subnet: '10.240.300.0/24' }, ErrorCode.InvalidConfig],
    [{ ...good, subnet: '10.240.1.0/31' }, ErrorCode.InvalidConfig],
    [{ ...good, subnet: 'fd00::/64' }, ErrorCode.InvalidConfig],
    [{ ...good, gateway: '10.240.2.1' }, ErrorCode.InvalidConfig],
    [{ ...good, gateway: '10.240.1.255' }, ErrorCode.InvalidConfig],
    [{ ...good, bridge: 'bridge-name-too-long' }, ErrorCode.InvalidConfig],
    [{ ...good, mtu: '1400' }, ErrorCode.InvalidConfig],
    [{ ...good, mtu: 20 }, ErrorCode.InvalidConfig],
    [{ ...good, hairpinMode: 'yes' }, ErrorCode.InvalidConfig],
    [{ ...good, dataDir: 'relative' }, ErrorCode.InvalidConfig],
    [{ ...good, lockTimeoutMs: -1 }, ErrorCode.InvalidConfig],
    [{ ...good, lockTimeoutMs: '5s' }, ErrorCode.InvalidConfig],
    [{ ...good, ipam: 'host-local' }, ErrorCode.InvalidConfig],
    [{ ...good, ipam: { type: '../bin/sh' } }, ErrorCode.InvalidConfig],
    [{ ...good, ipam: { type: 'host-local' } }, ErrorCode.InvalidConfig],
    [{ ...good, prevResult: { ips: 'x' } }, ErrorCode.DecodingFailure],
    [{ ...good, 'cni.dev/valid-attachments': {} }, ErrorCode.InvalidConfig],
  ])('rejects %o', (conf, code) => {
    expect(codeOf(() => validateConfig(conf as Record<string, unknown>))).toBe(code);
  });
  it('says which field is wrong', () => {
    expect(() => validateConfig({ ...good, subnet: '10.240.1.5/24' })).toThrow(/did you mean '10.240.1.0\/24'/);
    expect(() => validateConfig({ ...good, mtu: 'x' })).toThrow(/'mtu' must be a number/);
  });
  it('decodes only JSON objects (code 6)', () => {
    expect(codeOf(() => decodeConfig('{'))).toBe(ErrorCode.DecodingFailure);
    expect(codeOf(() => decodeConfig('[]'))).toBe(ErrorCode.DecodingFailure);
    expect(codeOf(() => decodeConfig(''))).toBe(ErrorCode.DecodingFailure);
    expect(decodeConfig('{"a":1}')).toEqual({ a: 1 });
  });
  it('finds the log file even in an invalid configuration', () => {
    expect(logFileOf('{"logFile":"/tmp/x.log","cniVersion":"9"}')).toBe('/tmp/x.log');
    expect(logFileOf('{"logFile":"rel"}')).toBeUndefined();
    expect(logFileOf('nope')).toBeUndefined();
  });
});
