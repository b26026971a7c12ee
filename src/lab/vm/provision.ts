// The VM lab provisions its VMs with the product itself: `kube-ipsec provision` (ssh2 into
// every VM's sshd), run inside the lab's wire namespace where the management network is, with
// the lab's cluster.yaml, out/, PKI state, plugin and known_hosts; its PID is recorded while
// it runs.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { kubeIpsecArgv, PACKAGE_ROOT } from '../../package-root.ts';
import { LabError } from '../host.ts';
import type { LabParts } from '../lab.ts';
import { NETNS_DIR } from '../../check/target.ts';

/**
 * The product's provisioning (`kube-ipsec provision`, ssh2 into every VM's sshd), run inside
 * the wire namespace where the management network is; its PID is recorded while it runs.
 */
export async function provisionLab(lab: LabParts, plugin: string, say: (line: string) => void, extra: string[] = []): Promise<string> {
  const argv = [
    'nsenter',
    `--net=${NETNS_DIR}/${lab.topology.wire.ns}`,
    ...kubeIpsecArgv(),
    'provision',
    '--config',
    join(lab.stateDir, 'cluster.yaml'),
    '--out',
    join(lab.stateDir, 'out'),
    '--state',
    join(lab.stateDir, 'pki'),
    '--plugin',
    plugin,
    '--known-hosts',
    join(lab.stateDir, 'ssh', 'known_hosts'),
    ...extra,
  ];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: '' } });
  const record = { pid: child.pid!, comm: 'node', ns: lab.topology.wire.ns, role: 'provision' as const, what: 'kube-ipsec provision' };
  lab.state.addProcess(record);
  let out = '';
  let err = '';
  const lines = (chunk: string, into: 'out' | 'err') => {
    if (into === 'out') out += chunk;
    else err += chunk;
    for (const l of chunk.split('\n')) if (l.trim()) say(l);
  };
  child.stdout.on('data', (d: Buffer) => lines(d.toString(), 'out'));
  child.stderr.on('data', (d: Buffer) => lines(d.toString(), 'err'));
  const code = await new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('close', res);
  });
  lab.state.removeProcess(record.pid);
  if (code !== 0) throw new LabError(`kube-ipsec provision failed (exit ${code}): ${(err || out).trim().split('\n').slice(-4).join(' | ')}`);
  return out;
}
