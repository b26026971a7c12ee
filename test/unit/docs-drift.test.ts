// Docs that cannot drift: every command, option, node path and cluster.yaml key that
// README.md, CONTRIBUTING.md and docs/ mention exists. Commands against package.json's
// scripts and each subcommand's --help; node paths against trees rendered from the
// repository's cluster.yaml (and a variant with every optional file) or the allow-list
// below; keys against the schema. CHANGELOG.md is history: it may name what no longer exists.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docFiles, ROOT, renderedTree } from '../../scripts/docs.ts';
import { COMMANDS } from '../../src/commands.ts';
import { clusterSchema } from '../../src/config/schema.ts';

const docs = docFiles()
  .filter((f) => f !== 'CHANGELOG.md')
  .map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));

/** Code in a page: fenced blocks and inline spans, each with the line it starts on. */
function codeOf(text: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  let fence: string[] | undefined;
  let start = 0;
  text.split('\n').forEach((line, i) => {
    if (line.startsWith('```')) {
      if (fence) out.push({ line: start, code: fence.join('\n') });
      fence = fence ? undefined : [];
      start = i + 2;
      return;
    }
    if (fence) fence.push(line);
    else for (const m of line.matchAll(/`([^`]+)`/g)) out.push({ line: i + 1, code: m[1]! });
  });
  return out;
}

const code = docs.flatMap((d) => codeOf(d.text).map((c) => ({ ...c, where: `${d.file}:${c.line}` })));

// ---- commands ------------------------------------------------------------------------------

const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const help = new Map<string, string>();

async function helpText(command: string): Promise<string> {
  if (!help.has(command)) {
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void lines.push(a.join(' '));
    try {
      await (await COMMANDS[command]!.load())(['--help']);
    } finally {
      console.log = log;
    }
    help.set(command, lines.join('\n'));
  }
  return help.get(command)!;
}

/** `npm run render -- --diff --node x` / `kube-ipsec render --diff` → ['render', ['--diff', '--node']]. */
function invocations(text: string): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const line of text.split('\n')) {
    for (const m of line.matchAll(/(?:npm run ([a-z]+)(?: -- ([^#&|;`)]*))?|kube-ipsec ([a-z]+)([^#&|;`)]*))/g)) {
      const name = m[1] ?? m[3]!;
      const rest = m[1] ? (m[2] ?? '') : (m[4] ?? '');
      out.push([
        name,
        rest
          .split(/\s+/)
          .filter((t) => t.startsWith('--'))
          .map((t) => t.split('=')[0]!),
      ]);
    }
  }
  return out;
}

// ---- node paths ----------------------------------------------------------------------------

/** Node paths that exist only at run time, or are the host's; each says what makes it. */
const RUNTIME_PATHS = [
  '/opt/cni/bin/ipsec-cni', // the plugin: dist/ipsec-cni, installed by provisioning, not rendered
  '/var/lib/cni/ipsec-cni/', // the plugin's IPAM store (dataDir), made by its first ADD
  '/var/lib/kube-ipsec/', // provisioning's own state: stage, txn, archive cache, image archives
  '/var/lib/kube-ipsec-check/', // the reboot check's captures through a boot
  '/var/lib/etcd', // etcd's data dir (--data-dir), made by etcd at its first start
  '/etc/ssh/ssh_host_ed25519_key.pub', // sshd's host key, made on the node at its first boot
  '/etc/vbox/networks.conf', // VirtualBox's host-only ranges: the host's, not a node's
  '/etc/netns/', // iproute2's per-namespace /etc: the host's (the lab does not use it)
  '/etc/libvirt', // the host's libvirt (the Vagrant test's sandbox replaces it)
  '/var/lib/libvirt', // the host's libvirt storage pool
];

const NODE_PATH = /(?<![\w.~$/<>-])\/(?:etc|usr\/local|var\/lib|opt\/cni|root)(?:\/[^\s`'"),;|*]*)?/g;
/** File names a page may mention alone: they must be the name of a rendered file. */
const NODE_FILE = /(?<![\w./-])[\w-]+\.(?:conflist|service|socket|nft|tsv)\b/g;
/** Files a page may name that are not rendered: units the node's packages bring, and the stage's own. */
const UNRENDERED_FILES = [
  'strongswan-starter.service', // strongswan-starter's unit (the tree adds a drop-in)
  'systemd-sysctl.service', // systemd's
  'systemd-modules-load.service', // systemd's
  'containerd.service', // the containerd release's
  'sha256.tsv', // what each staged file holds: written by the host into the stage per run
];

let trees: { out: string; remove: () => void }[] = [];
const rendered = new Set<string>();

function walk(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel)).flatMap((n) => (statSync(join(dir, rel, n)).isDirectory() ? walk(dir, `${rel}/${n}`) : [`${rel}/${n}`]));
}

beforeAll(async () => {
  trees = [
    await renderedTree(),
    // Every optional file: containerd, an air-gapped install, per-pair keys, node encryption.
    await renderedTree((y) =>
      y
        .replace('runtime: docker', 'runtime: containerd')
        .replace('  auth: pubkey ', '  auth: psk    ')
        .replace('  espMode: kernel', '  nodeEncryption: true\n  espMode: kernel')
        .concat('\nbinaries:\n  dir: ./binaries\n  allowAbsent: true\n'),
    ),
  ];
  for (const t of trees) {
    for (const node of readdirSync(t.out).filter((n) => statSync(join(t.out, n)).isDirectory())) {
      for (const f of walk(join(t.out, node))) rendered.add(f);
      // Binaries the node installs from its archives (artifacts.tsv: destination last).
      for (const row of readFileSync(join(t.out, node, 'etc/kube-ipsec/artifacts.tsv'), 'utf8').split('\n')) {
        if (row && !row.startsWith('#')) rendered.add(row.split('\t').pop()!);
      }
    }
  }
}, 60_000);
afterAll(() => {
  for (const t of trees) t.remove();
});

/** `/etc/kubernetes/addons/`, `/etc/kube-ipsec/<node>.env`, `/var/lib/…`: exact, a directory, or a pattern. */
function nodePathExists(path: string): boolean {
  const clean = path.replace(/[.:]+$/, '').replace(/(.)\/$/, '$1');
  const pattern = new RegExp(
    `^${clean
      .split(/(<[^>]+>|…)/)
      .map((part) => (part === '…' ? '.*' : part.startsWith('<') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('')}(/.*)?$`,
  );
  const known = [...rendered, ...RUNTIME_PATHS.map((p) => p.replace(/\/$/, ''))];
  if (RUNTIME_PATHS.some((p) => p.endsWith('/') && clean.startsWith(p))) return true;
  return known.some((f) => pattern.test(f) || f.startsWith(`${clean}/`));
}

// ---- cluster.yaml keys ---------------------------------------------------------------------

type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema };
const TOP = Object.keys((clusterSchema as Schema).properties!).join('|');
const KEY = new RegExp(`(?<![\\w./-])(?:${TOP})(?:\\[\\d*\\])?(?:\\.(?:[A-Za-z]\\w*|<\\w+>)(?:\\[\\d*\\])?)+(?![\\w/-])`, 'g');
/** `cluster.yaml`, `ipsec.conf`, `cluster.local`: file names and values, not keys. */
const NOT_A_KEY = /\.(?:yaml|json|conf|secrets|d|local|nft|tsv|ts|md|pem|key|crt|service)$/;

function keyExists(key: string): boolean {
  let s: Schema | undefined = clusterSchema as Schema;
  for (const part of key.split('.')) {
    const name = part.replace(/\[\d*\]$/, '');
    if (!s) return false;
    if (name.startsWith('<')) {
      // `versions.images.<name>.id`: any one of the properties there.
      const any: Schema | undefined = Object.values(s.properties ?? {})[0];
      s = any;
    } else s = s.properties?.[name];
    if (s && part.endsWith(']')) s = s.items;
  }
  return s !== undefined;
}

describe('docs name only what exists', () => {
  it('every npm run <script> is a script of package.json', () => {
    const missing = docs.flatMap((d) =>
      [...d.text.matchAll(/\bnpm run ([\w-]+(?::[\w-]+)*)/g)]
        .filter((m) => !(m[1]! in scripts))
        .map((m) => `${d.file}: npm run ${m[1]} is not in package.json`),
    );
    expect(missing).toEqual([]);
  });

  it("every option given to a subcommand is in that subcommand's --help", async () => {
    const wrong: string[] = [];
    for (const c of code) {
      for (const [name, options] of invocations(c.code)) {
        if (!COMMANDS[name]) continue;
        const text = await helpText(name);
        for (const o of options)
          if (o !== '--help' && !new RegExp(`(^|\\s)${o}\\b`, 'm').test(text)) wrong.push(`${c.where}: ${name} ${o}: not an option of kube-ipsec ${name}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('every path on a node is in a rendered tree, an installed binary, or made at run time (allow-list)', () => {
    const missing = code.flatMap((c) =>
      [...c.code.matchAll(NODE_PATH)]
        .map((m) => m[0])
        .filter((p) => !nodePathExists(p))
        .map((p) => `${c.where}: ${p}`),
    );
    expect(missing).toEqual([]);
  });

  it('every unit, conflist or provisioner file named alone is a rendered file', () => {
    const names = new Set([...rendered].map((f) => f.split('/').pop()!));
    const missing = code.flatMap((c) =>
      [...c.code.matchAll(NODE_FILE)]
        .map((m) => m[0])
        .filter((n) => !names.has(n) && !UNRENDERED_FILES.includes(n))
        .map((n) => `${c.where}: ${n}`),
    );
    expect(missing).toEqual([]);
  });

  it('every cluster.yaml key is in the schema', () => {
    const missing = code.flatMap((c) =>
      [...c.code.matchAll(KEY)]
        .map((m) => m[0])
        .filter((k) => !NOT_A_KEY.test(k) && !keyExists(k))
        .map((k) => `${c.where}: ${k}`),
    );
    expect(missing).toEqual([]);
  });
});

describe('the drift checks themselves', () => {
  it('catch a conflist, a key, a script and an option that do not exist', async () => {
    expect(nodePathExists('/etc/cni/net.d/10-ipsec.conflist')).toBe(false);
    expect(nodePathExists('/etc/cni/net.d/10-kube-ipsec.conflist')).toBe(true);
    expect(nodePathExists('/etc/kubernetes/addons/')).toBe(true);
    expect(nodePathExists('/usr/local/bin/kubelet')).toBe(true);
    expect(nodePathExists('/var/lib/cni/ipsec-cni')).toBe(true);
    expect(keyExists('network.bridge')).toBe(true);
    expect(keyExists('nodes[].ssh.hostKey')).toBe(true);
    expect(keyExists('versions.images.<name>.id')).toBe(true);
    expect(keyExists('network.bridgeName')).toBe(false);
    expect('lint:all' in scripts).toBe(false);
    expect(invocations('npm run render -- --diff --node minion2 # x --nope')).toEqual([['render', ['--diff', '--node']]]);
    expect(await helpText('render')).not.toMatch(/--dry-run/);
  });
});
