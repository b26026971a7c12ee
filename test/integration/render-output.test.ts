// `npm run render` against a real file system: write-if-changed, stale files removed,
// nothing written on bad input, previews that write nothing, restartable swaps.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/render/cli.ts';
import { listFiles } from '../../src/render/output.ts';
import { OUT_MARKER } from '../../src/render/ownership.ts';
import { clusterYaml } from '../helpers/cluster.ts';
import { cliSandbox } from '../helpers/render-cli.ts';

const box = cliSandbox('render');

const paths = () => ({ config: join(box.dir, 'cluster.yaml'), out: join(box.dir, 'out'), state: join(box.dir, 'state') });
function writeConfig(edits: Record<string, unknown> = {}): void {
  writeFileSync(paths().config, clusterYaml(edits));
}
async function render(...extra: string[]): Promise<number> {
  const p = paths();
  return main(['--config', p.config, '--out', p.out, '--state', p.state, ...extra]);
}
/** path → [content, mode, inode, mtime] of every file under `d`. */
function snapshot(d: string): Map<string, [string, number, number, number]> {
  return new Map(
    listFiles(d).map((f) => {
      const st = statSync(join(d, f));
      return [f, [readFileSync(join(d, f), 'utf8'), st.mode & 0o777, st.ino, st.mtimeMs]];
    }),
  );
}
const contents = (d: string) => new Map([...snapshot(d)].map(([k, [c, m]]) => [k, [c, m]]));

describe('render to out/', () => {
  it("writes every node's tree, and a second run writes nothing (same inodes, same mtimes)", async () => {
    writeConfig();
    expect(await render()).toBe(0);
    const first = snapshot(paths().out);
    expect([...first.keys()].filter((f) => !f.includes('/'))).toEqual([OUT_MARKER, 'README.md', 'cluster.json']);
    for (const node of ['master', 'minion1', 'minion2', 'minion3']) expect(first.has(`${node}/etc/ipsec.conf`)).toBe(true);
    expect(await render()).toBe(0);
    expect(snapshot(paths().out)).toEqual(first);
    expect(box.output.join('\n')).toMatch(/0 written, \d+ unchanged, 0 removed/);
  });

  it('is deterministic: same cluster.yaml + state → byte-identical trees', async () => {
    writeConfig();
    expect(await render()).toBe(0);
    const p = paths();
    expect(await main(['--config', p.config, '--out', join(box.dir, 'out2'), '--state', p.state])).toBe(0);
    expect(contents(join(box.dir, 'out2'))).toEqual(contents(p.out));
  });

  it('one edit rewrites only the files it affects; a removed node disappears', async () => {
    writeConfig();
    await render();
    writeConfig({ 'network.clusterDns': '10.30.0.53' });
    box.output = [];
    expect(await render()).toBe(0);
    const written = box.output.join('\n');
    // three kubelet configs, CoreDNS's Service on the master, out/README.md
    expect(written).toMatch(/ 5 written,/);
    writeConfig({ 'nodes.3': undefined });
    box.output = [];
    await render();
    expect(existsSync(join(paths().out, 'minion3'))).toBe(false);
    expect(box.output.join('\n')).toMatch(/removed minion3\/etc\/ipsec.conf/);
    // and the remaining nodes lost their tunnel to it
    expect(readFileSync(join(paths().out, 'minion1/etc/ipsec.conf'), 'utf8')).not.toContain('minion3');
  });

  it('removes files that are no longer rendered', async () => {
    writeConfig();
    await render();
    writeFileSync(join(paths().out, 'minion1/etc/stale.conf'), 'left over');
    await render();
    expect(existsSync(join(paths().out, 'minion1/etc/stale.conf'))).toBe(false);
  });

  it('keys are 0600 in out/ and in the state dir, which is 0700', async () => {
    writeConfig();
    await render();
    const p = paths();
    expect(statSync(join(p.out, 'master/etc/kubernetes/pki/ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(p.out, 'minion2/etc/ipsec.secrets')).mode & 0o777).toBe(0o600);
    expect(statSync(p.state).mode & 0o777).toBe(0o700);
    for (const f of listFiles(p.state)) expect(statSync(join(p.state, f)).mode & 0o777, f).toBe(f.endsWith('.key') || f === 'encryption-key' ? 0o600 : 0o644);
  });

  it("--node writes only that node's tree", async () => {
    writeConfig();
    expect(await render('--node', 'minion2')).toBe(0);
    expect(
      listFiles(paths().out)
        .filter((f) => f !== OUT_MARKER)
        .every((f) => f.startsWith('minion2/')),
    ).toBe(true);
    expect(existsSync(join(paths().out, OUT_MARKER))).toBe(true);
  });

  it('recovers from a run killed between its two renames', async () => {
    writeConfig();
    await render();
    const before = contents(paths().out);
    renameSync(paths().out, `${paths().out}.old-424242`);
    // A staging tree starts with the marker; a look-alike without it is not render's.
    mkdirSync(`${paths().out}.staging-424243`);
    writeFileSync(join(`${paths().out}.staging-424243`, OUT_MARKER), '');
    mkdirSync(`${paths().out}.staging-424244`);
    expect(await render()).toBe(0);
    expect(contents(paths().out)).toEqual(before);
    expect(existsSync(`${paths().out}.old-424242`) || existsSync(`${paths().out}.staging-424243`)).toBe(false);
    expect(existsSync(`${paths().out}.staging-424244`)).toBe(true);
  });
});

describe('--diff previews an edit', () => {
  it('prints a unified diff and writes nothing, not even new credentials', async () => {
    writeConfig();
    await render();
    const before = snapshot(paths().out);
    const stateBefore = snapshot(paths().state);
    writeConfig({ 'network.clusterDns': '10.30.0.53', 'nodes.0.ip': '192.168.10.11' });
    box.output = [];
    expect(await render('--diff')).toBe(0);
    const diff = box.output.join('');
    expect(diff).toContain('--- a/minion1/var/lib/kubelet/config.yaml\n+++ b/minion1/var/lib/kubelet/config.yaml');
    expect(diff).toMatch(/^- {2}- 10\.30\.0\.10$/m);
    expect(diff).toMatch(/^\+ {2}- 10\.30\.0\.53$/m);
    // the master's address changed: its serving certificate would be re-issued
    expect(diff).toMatch(/would issue .*apiserver/);
    expect(diff).toContain('secret file changed; content not shown');
    expect(diff).not.toContain('PRIVATE KEY');
    expect(snapshot(paths().out)).toEqual(before);
    expect(snapshot(paths().state)).toEqual(stateBefore);
  });

  it('on a fresh checkout, shows every file as new without creating out/ or the state dir', async () => {
    writeConfig();
    expect(await render('--diff', '--node', 'minion1')).toBe(0);
    expect(box.output.join('')).toContain('+++ b/minion1/etc/ipsec.conf');
    expect(existsSync(paths().out) || existsSync(paths().state)).toBe(false);
  });

  it('says so when nothing would change', async () => {
    writeConfig();
    await render();
    box.output = [];
    await render('--diff');
    expect(box.output.join('')).toContain('no changes');
  });
});

describe('bad input writes nothing', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['overlapping pod and service ranges', { 'network.serviceCidr': '10.240.0.0/24' }, 'network.serviceCidr'],
    ['duplicate node IP', { 'nodes.2.ip': '192.168.10.21' }, 'nodes[2].ip'],
    ['node IP in the pod range', { 'nodes.1.ip': '10.240.1.9' }, 'nodes[1].ip'],
    ['DNS outside the service range', { 'network.clusterDns': '10.0.0.10' }, 'network.clusterDns'],
    ['more nodes than /24s', { 'network.podCidr': '10.240.0.0/23' }, 'nodes'],
    ['malformed CIDR', { 'network.serviceCidr': '10.30.0/24' }, 'network.serviceCidr'],
    ['duplicate names', { 'nodes.3.name': 'minion2' }, 'nodes[3].name'],
  ];

  it.each(cases)('%s: exit 2, the key named, out/ and state untouched', async (_, edits, key) => {
    writeConfig();
    await render();
    const before = snapshot(paths().out);
    const stateBefore = snapshot(paths().state);
    writeConfig(edits);
    box.output = [];
    expect(await render()).toBe(2);
    expect(box.output.join('\n')).toContain(`${key}`);
    expect(box.output.join('\n')).toContain('nothing was written');
    expect(snapshot(paths().out)).toEqual(before);
    expect(snapshot(paths().state)).toEqual(stateBefore);
  });

  it('a bad config on a fresh checkout creates neither out/ nor the state dir', async () => {
    writeConfig({ 'nodes.1.ip': 'not-an-ip' });
    expect(await render()).toBe(2);
    expect(existsSync(paths().out) || existsSync(paths().state)).toBe(false);
  });

  it('unknown --node and --reissue ids are refused with the valid choices', async () => {
    writeConfig();
    expect(await render('--node', 'minion9')).toBe(2);
    expect(box.output.join('\n')).toMatch(/--node = "minion9": is not a node of this cluster\n\s+fix: use one of: master, minion1, minion2, minion3/);
    expect(await render('--reissue', 'apiserverr')).toBe(2);
    expect(box.output.join('\n')).toMatch(/--reissue = "apiserverr".*\n.*apiserver, apiserver-kubelet-client/);
    expect(existsSync(paths().out)).toBe(false);
  });

  it('a missing config file is named', async () => {
    expect(await main(['--config', join(box.dir, 'nope.yaml'), '--out', paths().out])).toBe(2);
    expect(box.output.join('\n')).toMatch(/nope\.yaml: .*does not exist/);
  });
});
