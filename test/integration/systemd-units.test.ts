// `systemd-analyze verify` on every rendered unit, in a scratch root per node holding the
// node's rendered tree, this machine's own systemd units, and the programs the units run.
// Kubernetes binaries cannot be downloaded here, so those (and dockerd) are empty
// executables: verify only checks that a command exists and is executable.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import type { RenderedFile } from '../../src/render/files.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan as makePlan } from '../helpers/cluster.ts';

const HOST_UNITS = ['/lib/systemd/system', '/usr/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')))!;
// Units the node's packages provide but this machine lacks (Debian docker.io's docker.socket).
const PACKAGE_UNITS: Record<string, string> = {
  'docker.socket':
    '[Unit]\nDescription=Docker Socket for the API\n\n[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\nSocketUser=root\nSocketGroup=docker\n\n[Install]\nWantedBy=sockets.target\n',
};

const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-units-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function commandsOf(unitText: string): string[] {
  return [...unitText.matchAll(/^Exec[A-Za-z]*=[-@+!:]*(\/\S+)/gm)].map((m) => m[1]!);
}

function nodeRoot(name: string, files: RenderedFile[]): { root: string; units: string[]; stubs: string[] } {
  const root = join(scratch, name);
  cpSync(HOST_UNITS, join(root, 'usr/lib/systemd/system'), { recursive: true });
  for (const [unit, text] of Object.entries(PACKAGE_UNITS)) writeFileSync(join(root, 'usr/lib/systemd/system', unit), text);
  for (const f of files) {
    mkdirSync(dirname(join(root, f.path)), { recursive: true });
    writeFileSync(join(root, f.path), f.content, { mode: f.mode });
  }
  const units = files.filter((f) => f.path.startsWith(`${PATHS.systemdDir}/`) && /\.(service|socket)$/.test(f.path)).map((f) => f.path.split('/').pop()!);
  const unitTexts = [
    ...files.filter((f) => /\.(service|socket|conf)$/.test(f.path) && f.path.startsWith(PATHS.systemdDir)).map((f) => f.content),
    readFileSync(join(HOST_UNITS, UNITS.strongswan), 'utf8'),
  ];
  const stubs: string[] = [];
  for (const cmd of new Set(unitTexts.flatMap(commandsOf))) {
    const target = join(root, cmd);
    if (existsSync(target)) continue;
    mkdirSync(dirname(target), { recursive: true });
    if (existsSync(cmd)) copyFileSync(cmd, target);
    else {
      writeFileSync(target, '#!/bin/sh\nexit 0\n');
      stubs.push(cmd);
    }
    chmodSync(target, 0o755);
  }
  return { root, units, stubs };
}

describe.each([
  ['docker', {}],
  ['containerd', { runtime: 'containerd' }],
  // air-gapped: the image loader unit and the kubelet ordered after it
  ['docker, air-gapped', { binaries: { dir: './binaries' } }],
  ['containerd, air-gapped', { runtime: 'containerd', binaries: { dir: './binaries' } }],
])('systemd-analyze verify (runtime %s)', (runtime, edits) => {
  const plan = makePlan(edits);
  const cluster = renderCluster(plan, placeholderPki(plan), loadTemplates());

  it.each(plan.nodes.map((n) => n.name))('%s: every rendered unit verifies, with its strongSwan drop-in', (node) => {
    const { root, units, stubs } = nodeRoot(`${runtime.replace(/\W+/g, '-')}-${node}`, cluster.nodes.get(node)!);
    // Only binaries the provisioner downloads (or the runtime package installs) are stand-ins.
    for (const s of stubs) expect(s, s).toMatch(/^\/usr\/local\/(s?bin)\/|^\/usr\/sbin\/dockerd$/);
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...units, UNITS.strongswan], { encoding: 'utf8' });
    expect(r.stderr, r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
