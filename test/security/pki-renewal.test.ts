// Finding: pki.renewBeforeDays at or beyond a validity was accepted, and then every render
// re-issued the CA (or every certificate): every node's trust and keys changed at each
// `vagrant provision`. Now such a value is refused before anything is issued, and a value
// just below the validity re-issues nothing on the next render (the real render, on disk).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { runRender } from '../../src/render/pipeline.ts';
import { clusterYaml } from '../helpers/cluster.ts';

const root = mkdtempSync(join(tmpdir(), 'kube-ipsec-secpki-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

async function render(dir: string, pki: Record<string, number>, now: Date) {
  const configFile = join(dir, 'cluster.yaml');
  writeFileSync(configFile, clusterYaml(Object.fromEntries(Object.entries(pki).map(([k, v]) => [`pki.${k}`, v]))));
  return runRender({ configFile, outDir: join(dir, 'out'), stateDir: join(dir, 'state'), now });
}
const fresh = () => {
  const dir = join(root, String(seq++));
  mkdirSync(dir);
  return dir;
};
const state = (dir: string) => new Map(readdirSync(join(dir, 'state')).map((f) => [f, readFileSync(join(dir, 'state', f), 'utf8')]));

describe('pki.renewBeforeDays shorter than every validity', () => {
  it.each([
    [{ renewBeforeDays: 365 }, 'certValidityDays = 365'],
    [{ renewBeforeDays: 400 }, 'certValidityDays = 365'],
    [{ renewBeforeDays: 200, caValidityDays: 200, certValidityDays: 100 }, 'certValidityDays = 100'],
    [{ renewBeforeDays: 30, caValidityDays: 30 }, 'caValidityDays = 30'],
  ])('%j is refused before anything is issued', async (pki, named) => {
    const dir = fresh();
    const err = await render(dir, pki, new Date('2026-01-15T12:00:00Z')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const issue = (err as ConfigError).issues[0]!;
    expect(issue.path).toBe('pki.renewBeforeDays');
    expect(issue.problem).toContain(`not shorter than pki.${named}`);
    expect(issue.problem).toMatch(/every render would re-issue/);
    expect(readdirSync(dir)).toEqual(['cluster.yaml']);
  });

  it('an existing cluster whose edit would re-issue everything keeps its CA and keys', async () => {
    const dir = fresh();
    const now = new Date('2026-01-15T12:00:00Z');
    await render(dir, {}, now);
    const before = state(dir);
    await expect(render(dir, { renewBeforeDays: 3650 }, now)).rejects.toThrow(/pki\.renewBeforeDays = 3650: is not shorter than pki\.certValidityDays = 365/);
    expect(state(dir)).toEqual(before);
  });

  it('just below the validity, the next render re-issues nothing', async () => {
    const dir = fresh();
    const first = await render(dir, { renewBeforeDays: 364 }, new Date('2026-01-15T12:00:00Z'));
    expect(first.pki.issued.length).toBeGreaterThan(5);
    const again = await render(dir, { renewBeforeDays: 364 }, new Date('2026-01-15T13:00:00Z'));
    expect(again.pki.issued).toEqual([]);
  });
});
