// The two-step rotations through `npm run render` (docs/security.md, Rotation): --reissue
// ike-ca opens one, every render names the step that finishes it, --retire ends it, and
// requests that would lose a generation still in use are refused before anything is written.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/render/cli.ts';
import { listFiles } from '../../src/render/output.ts';
import { clusterYaml } from '../helpers/cluster.ts';
import { cliSandbox } from '../helpers/render-cli.ts';

const box = cliSandbox('rotations');
const paths = () => ({ config: join(box.dir, 'cluster.yaml'), out: join(box.dir, 'out'), state: join(box.dir, 'state') });
const render = (...extra: string[]) => main(['--config', paths().config, '--out', paths().out, '--state', paths().state, ...extra]);
const printed = () => box.output.join('\n');
/** path → [content, mode] of every file under `d`. */
const contents = (d: string) => new Map(listFiles(d).map((f) => [f, [readFileSync(join(d, f), 'utf8'), statSync(join(d, f)).mode & 0o777]]));
const previousCert = () => join(paths().out, 'minion1/etc/ipsec.d/certs/minion1-previous.pem');

describe('render --reissue / --retire', () => {
  it('opens an IKE rotation, names the step that ends it, and ends it with --retire', async () => {
    writeFileSync(paths().config, clusterYaml());
    expect(await render()).toBe(0);
    expect(await render('--reissue', 'ike-ca')).toBe(0);
    expect(printed()).toMatch(
      /pki: ike-ca rotation in progress: nodes trust the previous and the new IKE CA; once every node is provisioned, finish it with --retire ike-ca/,
    );
    expect(existsSync(previousCert())).toBe(true);
    box.output = [];
    expect(await render()).toBe(0);
    expect(printed()).toMatch(/pki: ike-ca rotation in progress/);
    expect(await render('--retire', 'ike-ca')).toBe(0);
    expect(printed()).toMatch(/pki: ike-ca rotation finished/);
    expect(printed()).toMatch(/removed minion1\/etc\/ipsec\.d\/certs\/minion1-previous\.pem/);
    expect(existsSync(previousCert())).toBe(false);
  });

  it('refuses to retire what is not being rotated, before anything is written', async () => {
    writeFileSync(paths().config, clusterYaml());
    expect(await render('--retire', 'ike-ca')).toBe(2);
    expect(printed()).toMatch(/--retire = "ike-ca": no rotation of it is in progress \(nothing to retire\)\n\s+fix: nothing is being rotated/);
    expect(existsSync(paths().state) || existsSync(paths().out)).toBe(false);
    expect(await render('--retire', 'ca')).toBe(2);
    expect(printed()).toMatch(/--retire = "ca": only a rotation can be retired \(ike-ca, encryption-key\)/);
  });

  it('refuses to start a rotation again while it is open, leaving the state as it was', async () => {
    writeFileSync(paths().config, clusterYaml());
    expect(await render('--reissue', 'encryption-key')).toBe(0);
    expect(await render('--reissue', 'encryption-key')).toBe(0);
    const state = contents(paths().state);
    box.output = [];
    for (const ids of ['encryption-key', 'all']) {
      expect(await render('--reissue', ids)).toBe(2);
      expect(printed()).toMatch(new RegExp(`--reissue = "${ids}": would replace encryption-key again while its previous rotation is still in progress`));
    }
    expect(contents(paths().state)).toEqual(state);
  });
});
