// A small container image built here from Debian packages, for the air-gapped image path:
// busybox-static's rootfs (it serves HTTP with `httpd` and resolves names with `nslookup`),
// imported by podman into a private store and saved as a docker archive, the format
// `docker save` writes and provisioning verifies and loads. No registry is involved.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../../run.ts';

const BUSYBOX = '/bin/busybox';
export const TEST_IMAGE = 'kube-ipsec.test/smoke:busybox';

export interface BuiltImage {
  /** repository:tag the archive carries. */
  image: string;
  /** Image ID: sha256 of its config, as podman (and docker) report it. */
  id: string;
  /** The docker archive. */
  archive: string;
}

/** Builds TEST_IMAGE into `archive` (a docker archive), with podman's store under `workDir` (removed after). */
export async function buildTestImage(runner: Runner, workDir: string, archive: string, image = TEST_IMAGE): Promise<BuiltImage> {
  if (!existsSync(BUSYBOX) || !readFileSync('/var/lib/dpkg/status', 'utf8').includes('Package: busybox-static')) {
    throw new Error(`${BUSYBOX} from Debian's busybox-static is needed to build the test image (apt-get install busybox-static)`);
  }
  rmSync(workDir, { recursive: true, force: true });
  const rootfs = join(workDir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  // A private store, no cgroups or events daemon needed: import and save run no container.
  // podman refuses a runroot longer than 50 characters (its sockets live there), which a state
  // dir deep in a home directory exceeds: the runroot is a short private directory in /run.
  const runRoot = mkdtempSync('/run/kube-ipsec-podman-');
  const podman = [
    'podman',
    '--root',
    join(workDir, 'store'),
    '--runroot',
    runRoot,
    '--storage-driver',
    'vfs',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
  ];
  try {
    await runner.run(['tar', '-C', rootfs, '-cf', join(workDir, 'rootfs.tar'), '.'], { timeoutMs: 60_000 });
    await runner.run([...podman, 'import', '--change', 'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080"]', join(workDir, 'rootfs.tar'), image], {
      timeoutMs: 120_000,
    });
    rmSync(archive, { force: true });
    await runner.run([...podman, 'save', '--format', 'docker-archive', '--output', archive, image], { timeoutMs: 120_000 });
    const id = (await runner.run([...podman, 'image', 'inspect', '--format', '{{.Id}}', image], { timeoutMs: 60_000 })).stdout.trim();
    if (!/^(sha256:)?[0-9a-f]{64}$/.test(id)) throw new Error(`podman image inspect ${image}: unexpected image ID ${JSON.stringify(id)}`);
    return { image, id: id.startsWith('sha256:') ? id : `sha256:${id}`, archive };
  } finally {
    await runner.run([...podman, 'system', 'reset', '--force'], { allowFail: true, timeoutMs: 60_000 });
    rmSync(workDir, { recursive: true, force: true });
    rmSync(runRoot, { recursive: true, force: true });
  }
}
