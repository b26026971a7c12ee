// qemu for the VM lab: the accelerator (KVM when this host's KVM boots the image's kernel,
// else software emulation), each VM's command line (pure), and starting one inside the
// lab's wire namespace so its taps are the ones there.
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { NETNS_DIR } from '../../check/target.ts';
import type { NodeImage } from './image.ts';
import type { VmNode } from './layout.ts';

export const QEMU = 'qemu-system-x86_64';
/** /proc/<pid>/comm of qemu-system-x86_64 (15 characters). */
export const QEMU_COMM = 'qemu-system-x86';

export interface Accel {
  accel: 'kvm' | 'tcg';
  /** -cpu: the host's CPU under KVM; under TCG "max" (AES-NI and AVX2 emulated: GCM in the guest is faster). */
  cpu: 'host' | 'max';
  /** Why this one, for the log. */
  why: string;
}

export interface VmFiles {
  dir: string;
  overlay: string;
  seed: string;
  console: string;
  pidfile: string;
  log: string;
}

export function vmFiles(stateDir: string, node: string): VmFiles {
  const dir = join(stateDir, 'vms', node);
  return {
    dir,
    overlay: join(dir, 'disk.qcow2'),
    seed: join(dir, 'seed'),
    console: join(dir, 'console.log'),
    pidfile: join(dir, 'qemu.pid'),
    log: join(dir, 'qemu.log'),
  };
}

export const KERNEL_CMDLINE = 'console=ttyS0 panic=-1 net.ifnames=0 quiet systemd.show_status=1';

/**
 * The guest kernel's command line. Under software emulation KASLR is off: measured here, a
 * reset (every reboot) with a randomized kernel stalled 10-60 s in early module loading, in
 * about two boots out of three; without it every boot took the same ~1 s there.
 */
function kernelCmdline(accel: Accel): string {
  return accel.accel === 'tcg' ? `${KERNEL_CMDLINE} nokaslr` : KERNEL_CMDLINE;
}

/** qemu's argv for one VM (booting the image's kernel; the overlay's backing file is the image). */
export function qemuArgv(image: NodeImage, vm: VmNode, files: VmFiles, accel: Accel): string[] {
  return [
    QEMU,
    '-name',
    `kube-ipsec-${vm.name}`,
    '-machine',
    `pc,accel=${accel.accel}`,
    '-cpu',
    accel.cpu,
    '-m',
    String(vm.memoryMb),
    '-smp',
    String(vm.cpus),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    `file:${files.console}`,
    '-pidfile',
    files.pidfile,
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    kernelCmdline(accel),
    // The overlay is the VM's alone and thrown away by `down`: no need to wait for the disk.
    '-drive',
    `file=${files.overlay},if=virtio,format=qcow2,cache=unsafe,discard=unmap`,
    '-netdev',
    `tap,id=mgmt,ifname=${vm.mgmtTap},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=mgmt,mac=${vm.mgmtMac}`,
    '-netdev',
    `tap,id=underlay,ifname=${vm.underlayTap},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=underlay,mac=${vm.underlayMac}`,
    '-device',
    'virtio-rng-pci',
    '-fw_cfg',
    `name=opt/kube-ipsec/seed,file=${files.seed}`,
  ];
}

/** `qemu-img create` argv of a VM's copy-on-write overlay over the raw image. */
export function overlayArgv(image: NodeImage, files: VmFiles): string[] {
  return ['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', image.disk, '-F', 'raw', files.overlay];
}

/**
 * Starts qemu inside the wire namespace (nsenter execs it: the PID is qemu's), detached
 * from this process, with its own output in files.log. Resolves with the PID once qemu
 * has written its pidfile (devices opened), rejects with its complaint if it exits first.
 */
export async function startQemu(wireNs: string, argv: string[], files: VmFiles, timeoutMs = 30_000): Promise<number> {
  const out = openSync(files.log, 'a');
  const child = spawn('nsenter', [`--net=${NETNS_DIR}/${wireNs}`, ...argv], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error(`${QEMU} did not start`);
  const deadline = Date.now() + timeoutMs;
  while (!pidfileSays(files.pidfile, pid)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const why = existsSync(files.log) ? readFileSync(files.log, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
      throw new Error(`${QEMU} for ${files.dir} ${child.exitCode !== null ? `exited ${child.exitCode}` : 'did not start in time'}: ${why}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return pid;
}

function pidfileSays(file: string, pid: number): boolean {
  try {
    return Number(readFileSync(file, 'utf8').trim()) === pid;
  } catch {
    return false;
  }
}

/** The PID in a VM's qemu pidfile (a crashed `up` may not have recorded it). */
export function pidFromFile(files: VmFiles): number | undefined {
  try {
    const pid = Number(readFileSync(files.pidfile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

interface KvmProbe {
  ok: boolean;
  detail: string;
}

/** Can this process open /dev/kvm? */
function kvmDeviceUsable(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return undefined;
  } catch (err) {
    return existsSync('/dev/kvm') ? `/dev/kvm is not usable (${(err as NodeJS.ErrnoException).code})` : 'no /dev/kvm';
  }
}

const PROBE_MARK = 'Run /init as init process';

/**
 * Boots the image's kernel under KVM (no disk, no network) and reports whether it reaches its
 * initrd. Some hosts have a /dev/kvm that cannot run an ordinary guest kernel (nested PVM
 * hypervisors need PVM-built guests, some reject the host CPU's MSRs): only a boot tells.
 */
function probeKvm(image: NodeImage, timeoutMs = 20_000): Promise<KvmProbe> {
  const argv = [
    '-machine',
    'pc,accel=kvm',
    '-cpu',
    'host',
    '-m',
    '256',
    '-smp',
    '1',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-serial',
    'stdio',
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    'console=ttyS0 panic=-1 loglevel=7',
  ];
  return new Promise((resolve) => {
    const child = spawn(QEMU, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let settled = false;
    const finish = (r: KvmProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, detail: `the kernel did not reach its initrd within ${timeoutMs / 1000} s under KVM` }), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(PROBE_MARK)) finish({ ok: true, detail: 'the kernel boots under KVM' });
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (err) => finish({ ok: false, detail: err.message }));
    child.on('close', (code, signal) =>
      finish({
        ok: false,
        detail: `qemu ${code === null ? `died of ${signal}` : `exited ${code}`} under KVM: ${out.trim().split('\n').slice(-2).join(' | ')}`,
      }),
    );
  });
}

/**
 * KVM when it is there and boots the image's kernel (probed once per image and host kernel,
 * remembered next to the image), else TCG.
 */
export async function chooseAccel(image: NodeImage, wanted: 'auto' | 'kvm' | 'tcg'): Promise<Accel> {
  if (wanted === 'tcg') return { accel: 'tcg', cpu: 'max', why: 'software emulation (--accel tcg)' };
  const device = kvmDeviceUsable();
  if (device) {
    if (wanted === 'kvm') throw new Error(`--accel kvm: ${device}`);
    return { accel: 'tcg', cpu: 'max', why: `software emulation: ${device}` };
  }
  const cache = join(image.dir, `kvm-probe-${release()}.json`);
  let probe: KvmProbe;
  try {
    probe = JSON.parse(readFileSync(cache, 'utf8')) as KvmProbe;
  } catch {
    probe = await probeKvm(image);
    writeFileSync(cache, JSON.stringify(probe) + '\n');
  }
  if (probe.ok) return { accel: 'kvm', cpu: 'host', why: 'KVM' };
  const pvm = existsSync('/sys/module/kvm_pvm') ? ' (this host runs kvm_pvm, which boots only PVM-enabled guest kernels)' : '';
  if (wanted === 'kvm') throw new Error(`--accel kvm: /dev/kvm is there but ${probe.detail}${pvm}`);
  return { accel: 'tcg', cpu: 'max', why: `software emulation: /dev/kvm is there but ${probe.detail}${pvm}` };
}
