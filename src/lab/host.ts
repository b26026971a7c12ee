// What the lab needs from this machine, checked before anything is created, and the one
// question that decides the lab's only override: does this kernel do ESP itself?
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { EspMode } from '../plan/mtu.ts';
import type { Runner } from '../run.ts';

const LIBIPSEC_PLUGIN = '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so';

const TOOLS: Record<string, string> = {
  ip: 'iproute2',
  nsenter: 'util-linux',
  sysctl: 'procps',
  iptables: 'iptables',
  ipsec: 'strongswan-starter',
  swanctl: 'strongswan-swanctl',
  tcpdump: 'tcpdump',
  ping: 'iputils-ping',
  sleep: 'coreutils',
  unshare: 'util-linux',
};

export class LabError extends Error {
  override name = 'LabError';
}

export function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Throws one LabError naming everything missing (and the Debian packages that provide it). */
export function preflight(plugin: string): void {
  if (process.getuid?.() !== 0) {
    throw new LabError('the lab needs root (network namespaces, mounts, strongSwan): run it as root, e.g. `sudo npm run lab -- up`');
  }
  const problems = Object.entries(TOOLS)
    .filter(([tool]) => !onPath(tool))
    .map(([tool, pkg]) => `${tool} is missing (apt-get install ${pkg})`);
  if (!existsSync('/dev/net/tun')) problems.push('/dev/net/tun is missing (userspace ESP needs TUN)');
  if (!existsSync(plugin)) problems.push(`${plugin} does not exist: run \`npm run build\``);
  if (problems.length) throw new LabError(`cannot start the lab:\n  ${problems.join('\n  ')}`);
}

function requireLibipsec(): void {
  if (!existsSync(LIBIPSEC_PLUGIN)) {
    throw new LabError(
      `${LIBIPSEC_PLUGIN} is missing: this kernel has no ESP, so the lab needs strongSwan's userspace ESP (apt-get install libcharon-extra-plugins)`,
    );
  }
}

/**
 * Whether the kernel can hold an ESP security association, tried in a throwaway network
 * namespace of its own (`unshare --net`: the XFRM state vanishes with the command).
 */
async function kernelHasEsp(runner: Runner): Promise<boolean> {
  const key = `0x${'11'.repeat(20)}`;
  const r = await runner.run(
    [
      'unshare',
      '--net',
      'ip',
      'xfrm',
      'state',
      'add',
      'src',
      '127.0.0.1',
      'dst',
      '127.0.0.2',
      'proto',
      'esp',
      'spi',
      '0x100',
      'aead',
      'rfc4106(gcm(aes))',
      key,
      '128',
    ],
    {
      allowFail: true,
    },
  );
  return r.code === 0;
}

export async function chooseEspMode(runner: Runner, wanted: EspMode | 'auto'): Promise<EspMode> {
  const mode = wanted === 'auto' ? ((await kernelHasEsp(runner)) ? 'kernel' : 'userspace') : wanted;
  if (mode === 'userspace') requireLibipsec();
  return mode;
}
