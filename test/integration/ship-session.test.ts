// The node side of a `kube-ipsec provision` session (provision/session with lib.sh inlined,
// exactly the command line sent over ssh), driven here through the local transport.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/plan/paths.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { nodeBundles } from '../../src/ship/bundle.ts';
import { sessionCommand, shipNode } from '../../src/ship/session.ts';
import { localTransport } from '../../src/ship/transport.ts';
import { placeholderPki, plan as defaultPlan } from '../helpers/cluster.ts';
import { recorderEnv, snapshot } from '../helpers/ship-node.ts';

const CONF = 'conn minion1-minion2\n';
const root = mkdtempSync(join(tmpdir(), 'kube-ipsec-session-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function put(path: string, content: string, mode: number): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), content);
  chmodSync(join(root, path), mode);
}

/** Runs one session with `input` on stdin; returns its stdout. */
async function session(input: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const p = await localTransport().exec(sessionCommand(root, 'minion1'));
  p.stdin.end(input);
  const [stdout, stderr, done] = await Promise.all([text(p.stdout), text(p.stderr), p.done]);
  return { stdout, stderr, code: done.code };
}

describe('provision/session', () => {
  put(PATHS.ipsecSecrets, ': PSK "the-secret"\n', 0o600);
  put(PATHS.ipsecConf, CONF, 0o644);

  it('reports stamps and hashes of the files asked about, stat only for "?" paths', async () => {
    const r = await session(`${PATHS.ipsecConf}\n?${PATHS.ipsecSecrets}\n/etc/missing\n\n`);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^stat 644 \\d+:21:\\d+\\.\\d{9}:\\d+\\.\\d{9} ${PATHS.ipsecConf}$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^stat 600 \\S+ ${PATHS.ipsecSecrets}$`)));
    // Only the file asked about with its hash is hashed.
    expect(lines.filter((l) => l.startsWith('sha256 '))).toEqual([`sha256 ${createHash('sha256').update(CONF).digest('hex')} ${PATHS.ipsecConf}`]);
    expect(lines.some((l) => l.includes('/etc/missing'))).toBe(false);
    expect(lines.at(-2)).toBe('ready');
  });

  it('shows public files to a dry run, and never the content of a secret one, even when asked', async () => {
    const r = await session(`\nshow ${PATHS.ipsecConf}\nshow ${PATHS.ipsecSecrets}\nshow /etc/missing\ndone\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`ready\nfile 644 21 ${PATHS.ipsecConf}\nconn minion1-minion2\nfile 600 - ${PATHS.ipsecSecrets}\nfile - - /etc/missing\n`);
    expect(r.stdout).not.toContain('the-secret');
  });

  it('refuses an upload cut off midway and leaves no stage behind', async () => {
    const r = await session('\nupload\nnot a tar stream');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: the upload to minion1 was cut off; nothing was installed');
    expect(existsSync(join(root, PATHS.provisionStateDir, 'stage'))).toBe(false);
  });

  it('ends the session and installs nothing when an air-gapped archive is missing on this machine', async () => {
    const scratch = join(root, 'airgap');
    mkdirSync(scratch);
    const p = defaultPlan();
    const plugin = { file: join(root, PATHS.ipsecConf), size: CONF.length, digest: createHash('sha256').update(CONF).digest('hex') };
    const [bundle] = nodeBundles(p, renderCluster(p, placeholderPki(p), loadTemplates()), ['minion1'], plugin, join(root, 'no-binaries'));
    const r = await shipNode(localTransport(recorderEnv(join(root, 'records'))), bundle!, { root: scratch });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(
      new RegExp(
        `^minion1: air-gapped install: ${root}/no-binaries/kubernetes-node-linux-amd64\\.tar\\.gz is missing \\(binaries\\.dir in cluster\\.yaml\\); expected sha512:[0-9a-f]{128}; download it from https://dl\\.k8s\\.io/`,
      ),
    );
    expect(snapshot(scratch)).toEqual(new Map());
    expect(existsSync(join(scratch, PATHS.provisionStateDir, 'stage'))).toBe(false);
  });
});
