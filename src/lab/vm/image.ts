// The node images: a recipe (the build script, the Debian suite and mirror, the packages)
// and a cache outside the repository keyed by the recipe's hash, so the images are built
// once per recipe. One build makes both from one root file system: the VM lab's (kernel,
// initrd, raw ext4 root; every lab VM boots a copy-on-write overlay of it) and the Vagrant
// box for vagrant-libvirt (libvirt.box: a disk that boots by itself). Builders on one
// machine take turns (flock); a build lands in its final directory only when complete.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packagePath } from '../../package-root.ts';
import { everyOsPackage } from '../../render/artifacts.ts';
import type { Runner } from '../../run.ts';

const BUILD_SCRIPT = packagePath('src', 'lab', 'vm', 'build-image.sh');
export const DEFAULT_IMAGE_CACHE = '/var/cache/kube-ipsec/images';
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

/** What a VM needs besides the node's own packages: an init, device manager, sshd, sysctl, its kernel. */
export const VM_BASE_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'udev',
  'kmod',
  'iproute2',
  'procps',
  'openssh-server',
  'linux-image-cloud-amd64',
  'initramfs-tools',
];
/** What a Vagrant base box has besides: sudo for the vagrant user, DNS from DHCP (resolved, on D-Bus), rsync synced folders. */
const VM_BOX_PACKAGES = ['sudo', 'dbus', 'systemd-resolved', 'rsync'];

export interface ImageRecipe {
  suite: 'bookworm';
  mirror: string;
  kernelPackage: 'linux-image-cloud-amd64';
  packages: string[];
  /** build-image.sh itself (its guest files are heredocs in it). */
  script: string;
}

export interface NodeImage {
  key: string;
  dir: string;
  kernel: string;
  initrd: string;
  /** Raw ext4 root: the backing file of every VM's overlay, never written to. */
  disk: string;
  /** The Vagrant box for vagrant-libvirt (a tar: metadata.json, Vagrantfile, box.img). */
  box: string;
  /** Seconds this call spent building (undefined: the cached image was used). */
  builtIn?: number;
}

export function imageRecipe(mirror = DEFAULT_MIRROR): ImageRecipe {
  // One package list for both images, so the lab and the box never differ in what a node has.
  const packages = [...new Set([...VM_BASE_PACKAGES, ...everyOsPackage(), ...VM_BOX_PACKAGES])].sort();
  return { suite: 'bookworm', mirror, kernelPackage: 'linux-image-cloud-amd64', packages, script: readFileSync(BUILD_SCRIPT, 'utf8') };
}

/** The cache key: a hash of everything the build depends on, and nothing else. */
export function recipeKey(r: ImageRecipe): string {
  const canonical = JSON.stringify([r.suite, r.mirror, r.kernelPackage, r.packages, createHash('sha256').update(r.script).digest('hex')]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

function imageFiles(dir: string, key: string): NodeImage {
  return { key, dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.gz'), disk: join(dir, 'disk.img'), box: join(dir, 'libvirt.box') };
}

/** The image of this recipe if the cache holds a complete one. */
export function cachedImage(cacheDir: string, recipe: ImageRecipe): NodeImage | undefined {
  const key = recipeKey(recipe);
  const image = imageFiles(join(cacheDir, key), key);
  return [image.kernel, image.initrd, image.disk, image.box, join(image.dir, 'recipe.json')].every((f) => existsSync(f)) ? image : undefined;
}

export interface EnsureImageOptions {
  cacheDir?: string;
  recipe?: ImageRecipe;
  runner: Runner;
  log?: (line: string) => void;
}

/** The cached image of the recipe, built first if the cache has none (minutes; root). */
export async function ensureImage(o: EnsureImageOptions): Promise<NodeImage> {
  const cacheDir = o.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const recipe = o.recipe ?? imageRecipe();
  const cached = cachedImage(cacheDir, recipe);
  if (cached) return cached;
  const key = recipeKey(recipe);
  const final = join(cacheDir, key);
  const partial = `${final}.partial`;
  mkdirSync(cacheDir, { recursive: true });
  o.log?.(`building the node images ${key} into ${cacheDir} (Debian ${recipe.suite}, ${recipe.packages.length} packages; a few minutes, once per recipe)`);
  const started = performance.now();
  // Under the lock: someone may have finished meanwhile; a crashed build's leftovers go.
  const script = [
    'set -e',
    '[ -f "$1/disk.img" ] && [ -f "$1/recipe.json" ] && exit 0',
    'rm -rf "$2"; mkdir -p "$2"',
    'printf "%s\\n" "$3" >"$2/recipe.json"',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's "${@:7}", not a template.
    'bash "$4" "$2" "$5" "$6" "${@:7}" >"$2.log" 2>&1 || { tail -25 "$2.log" >&2; exit 1; }',
    'mv "$2.log" "$2/build.log"',
    'mv "$2" "$1"',
    'echo built',
  ].join('\n');
  const recipeJson = JSON.stringify({ key, ...recipe, script: undefined, scriptSha256: createHash('sha256').update(recipe.script).digest('hex') });
  const debCache = join(cacheDir, '..', 'debs');
  const r = await o.runner.run(
    [
      'flock',
      '-w',
      '3600',
      join(cacheDir, `${key}.lock`),
      'bash',
      '-c',
      script,
      'build',
      final,
      partial,
      recipeJson,
      BUILD_SCRIPT,
      recipe.mirror,
      debCache,
      ...recipe.packages,
    ],
    {
      timeoutMs: 3_600_000,
      // The box's metadata.json carries it: `npm run box` tells an installed box of another recipe.
      env: { ...process.env, KUBE_IPSEC_IMAGE_KEY: key },
    },
  );
  const image = cachedImage(cacheDir, recipe);
  if (!image) throw new Error(`the image build finished but ${final} is incomplete`);
  // Another builder may have finished it while this one waited for the lock.
  if (r.stdout.trim() !== 'built') return image;
  const builtIn = (performance.now() - started) / 1000;
  writeFileSync(join(final, 'built.json'), JSON.stringify({ seconds: builtIn, at: new Date().toISOString() }) + '\n');
  return { ...image, builtIn };
}

/** Seconds the cached image took to build, as recorded when it was built. */
export function recordedBuildSeconds(image: NodeImage): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(image.dir, 'built.json'), 'utf8')) as { seconds: number }).seconds;
  } catch {
    return undefined;
  }
}
