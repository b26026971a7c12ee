// What a Vagrant run with libvirt could leave on this host outside its sandbox, read before
// and after: the root network namespace (links, addresses, routes, iptables and nftables
// rules), libvirt's and Vagrant's host directories, and libvirt's daemons and dnsmasq running
// in the root namespace. Other engineers' tests run at the same time, but they too leave the
// root namespace alone (standards), so any difference is a finding.
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { processRunner } from '../../src/run.ts';
import { PRIVATE_DIRS } from './sandbox.ts';

export interface HostSnapshot {
  links: string[];
  addresses: string[];
  routes: string[];
  iptables: string[];
  nftables: string[];
  /** Every path below libvirt's host directories, /run/libvirt and ~/.vagrant.d. */
  files: string[];
  /** libvirtd, virtlogd, dnsmasq or qemu running in the root network namespace. */
  rootDaemons: string[];
}

const DAEMONS = new Set(['libvirtd', 'virtlogd', 'dnsmasq', 'qemu-system-x86']);

const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

export async function hostSnapshot(): Promise<HostSnapshot> {
  const run = async (argv: string[]) => (await processRunner.run(argv, { allowFail: true })).stdout;
  // Counters and generation headers change with traffic and time, rules do not.
  const iptables = lines(await run(['iptables-save']))
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/, '[]'));
  const nft = lines(await run(['nft', 'list', 'ruleset']));
  return {
    links: lines(await run(['ip', '-o', 'link', 'show'])).map((l) => l.split(':')[1]!.trim().split('@')[0]!),
    addresses: lines(await run(['ip', '-o', 'addr', 'show'])).map((l) => l.split(/\s+/).slice(1, 4).join(' ')),
    routes: lines(await run(['ip', 'route', 'show', 'table', 'all'])),
    iptables,
    nftables: nft,
    files: [...Object.values(PRIVATE_DIRS), '/run/libvirt', join(homedir(), '.vagrant.d')].flatMap(walk),
    rootDaemons: rootNamespaceDaemons(),
  };
}

function walk(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return [path, ...readdirSync(path).flatMap((e) => walk(join(path, e)))];
}

function rootNamespaceDaemons(): string[] {
  // This process runs in the root network namespace (PID 1's own is not readable here).
  const rootNet = readlinkSync('/proc/self/ns/net');
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .flatMap((pid) => {
      try {
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        return DAEMONS.has(comm) && readlinkSync(`/proc/${pid}/ns/net`) === rootNet ? [`${pid} ${comm}`] : [];
      } catch {
        return [];
      }
    });
}

/** What changed between two snapshots, per kind ("+" appeared, "-" went). */
export function hostChanges(before: HostSnapshot, after: HostSnapshot): string[] {
  const out: string[] = [];
  for (const key of Object.keys(before) as (keyof HostSnapshot)[]) {
    const b = new Set(before[key]);
    const a = new Set(after[key]);
    for (const x of after[key]) if (!b.has(x)) out.push(`${key}: + ${x}`);
    for (const x of before[key]) if (!a.has(x)) out.push(`${key}: - ${x}`);
  }
  return out;
}
