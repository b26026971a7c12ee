// A capture on a node that goes on through the node's reboot: a systemd unit running tcpdump
// on the underlay (what the node sends, as every capture on a node: see ssh-backend.ts), enabled for the next boot and ordered before the node network there, each
// start writing a new file under /var/lib (the node's /run does not survive the boot). It
// watches what the node itself sends while it shuts down and boots, which no other node can
// see: packets to its default gateway. Its own deadline keeps it from starting at any boot
// after the check, should the check die before removing it.
import { shellQuote } from '../shell.ts';
import { UNITS, PATHS } from '../plan/paths.ts';
import { waitFor, type Runner } from '../run.ts';
import type { Capture } from './target.ts';

type OnNode = (node: string, argv: readonly string[]) => string[];

const MARK = '@@kube-ipsec-check ';

/** Where captures across a reboot keep their files on the node (persistent, unlike /run). */
export const BOOT_CAPTURE_DIR = '/var/lib/kube-ipsec-check';

export interface BootCaptureSpec {
  /** Unit name (kube-ipsec-check-<run>-<name>.service). */
  unit: string;
  /** Directory of the capture files (one per boot). */
  dir: string;
  dev: string;
  filter: string;
  snaplen: number;
  /** The unit does not start after this time (seconds since the epoch), nor run longer than `lifetimeS`. */
  deadline: number;
  lifetimeS: number;
}

/** The script the unit runs at each start: a new capture file per boot (pure). */
export function bootCaptureScript(s: BootCaptureSpec): string {
  const tcpdump = ['tcpdump', '--immediate-mode', '-nn', '-U', '-Z', 'root', '-s', String(s.snaplen), '-Q', 'out', '-i', s.dev].map(shellQuote).join(' ');
  return [
    '#!/bin/sh',
    '# kube-ipsec check: the underlay, captured through a reboot (removed when the check ends).',
    `[ "$(date +%s)" -lt ${s.deadline} ] || exit 0`,
    '# libpcap refuses an interface that is not up yet: wait for it (30 s at most).',
    `for i in $(seq 300); do ip link show dev ${shellQuote(s.dev)} up | grep -q . && break; sleep 0.1; done`,
    `exec ${tcpdump} -w ${shellQuote(s.dir)}/capture.$(date +%s%N).pcap ${shellQuote(s.filter)}`,
    '',
  ].join('\n');
}

/** The unit file (pure). */
export function bootCaptureUnit(s: BootCaptureSpec): string {
  return [
    '# kube-ipsec check: the underlay, captured through a reboot (removed when the check ends).',
    '[Unit]',
    'Description=kube-ipsec check: underlay capture across a reboot',
    // As soon as the underlay is there; before the node network, so before anything it lets out.
    `After=sys-subsystem-net-devices-${s.dev.replace(/-/g, '\\x2d')}.device network.target`,
    `Before=${UNITS.nodeNetwork} ${UNITS.strongswan}`,
    '',
    '[Service]',
    `ExecStart=/bin/sh ${s.dir}/capture.sh`,
    `RuntimeMaxSec=${s.lifetimeS}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Installs and starts the unit on `node`; stop() removes it and returns the packets of every boot. */
export async function startBootCapture(runner: Runner, onNode: OnNode, node: string, s: BootCaptureSpec): Promise<Capture> {
  const path = `${PATHS.systemdDir}/${s.unit}`;
  const install = [
    `mkdir -p ${shellQuote(s.dir)}`,
    `printf '%s' ${shellQuote(bootCaptureScript(s))} >${shellQuote(s.dir)}/capture.sh`,
    `printf '%s' ${shellQuote(bootCaptureUnit(s))} >${path}`,
    'systemctl daemon-reload',
    `systemctl enable --now --quiet ${s.unit}`,
  ].join(' && ');
  await runner.run(onNode(node, ['sh', '-c', install]), { timeoutMs: 60_000 });
  const listening = await waitFor(
    async () => (await runner.run(onNode(node, ['sh', '-c', `ls ${s.dir}/capture.*.pcap >/dev/null 2>&1`]), { allowFail: true, timeoutMs: 20_000 })).code === 0,
    30_000,
    200,
  );
  if (!listening) {
    const status = await runner.run(onNode(node, ['systemctl', 'status', '--no-pager', '--lines=5', s.unit]), { allowFail: true, timeoutMs: 20_000 });
    await runner.run(onNode(node, ['sh', '-c', removeScript(s, path)]), { allowFail: true, timeoutMs: 60_000 });
    throw new Error(`the capture across the reboot of ${node} (${s.unit}) did not start: ${status.stdout.trim().split('\n').slice(-3).join(' | ')}`);
  }
  const bootBefore = (await runner.run(onNode(node, ['cat', '/proc/sys/kernel/random/boot_id']), { timeoutMs: 20_000 })).stdout.trim();
  let stopped: Promise<string[]> | undefined;
  const stop = async () => {
    await new Promise((r) => setTimeout(r, 200)); // the last replies in flight
    // First the boot ID (has it booted since?) and one line per file (one per start), then the packets.
    const read = [
      `systemctl stop ${s.unit}`,
      `echo "${MARK}boot $(cat /proc/sys/kernel/random/boot_id)"`,
      `for f in ${s.dir}/capture.*.pcap; do [ -e "$f" ] || continue; echo "${MARK}file"; tcpdump -nn -t -r "$f" 2>/dev/null; done`,
      removeScript(s, path),
    ].join('; ');
    const r = await runner.run(onNode(node, ['sh', '-c', read]), { allowFail: true, timeoutMs: 120_000 });
    const lines = r.stdout.split('\n').filter(Boolean);
    const bootNow = lines.find((l) => l.startsWith(`${MARK}boot `))?.slice(MARK.length + 5);
    const files = lines.filter((l) => l === `${MARK}file`).length;
    // A node that booted again must have started the capture again: otherwise its boot went unwatched.
    if (bootNow !== undefined && bootNow !== bootBefore && files < 2) {
      throw new Error(
        `${node} rebooted, but the capture across its reboot (${s.unit}) did not start again at boot: what it sent while it came back was not seen (journalctl -u ${s.unit} on ${node})`,
      );
    }
    return lines.filter((l) => !l.startsWith(MARK));
  };
  return { file: `${node}:${s.dir}`, stop: () => (stopped ??= stop()) };
}

function removeScript(s: BootCaptureSpec, path: string): string {
  return `systemctl disable --now --quiet ${s.unit} 2>/dev/null; rm -f ${path}; systemctl daemon-reload; rm -rf ${s.dir}; rmdir "$(dirname ${s.dir})" 2>/dev/null; true`;
}
