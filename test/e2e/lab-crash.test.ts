// `down` after `up` was killed half way (SIGKILL, no cleanup of its own): it finds what the
// crashed run recorded and removes it all.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { defaultClusterYaml, repoRoot } from '../helpers/cluster.ts';
import { readState } from '../../src/lab/state.ts';
import { e2eLab, NOTHING_LEFT } from './lab-fixture.ts';

const lab = e2eLab('lcr');
afterAll(() => lab.cleanup());

it('down after an up killed half way leaves no namespace, link, process or mount', async () => {
  lab.writeConfig(defaultClusterYaml());
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/e2e/lab-crash-child.ts'), lab.configFile, lab.stateDir, lab.prefix, assertPluginBuilt()], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => out.includes('crash point') && resolve());
    child.on('exit', () => reject(new Error(`the child exited before its crash point:\n${out}`)));
  });
  child.kill('SIGKILL');
  await exited;

  const state = readState(lab.stateDir)!;
  expect(state.phase).toBe('starting');
  const pids = lab.pids();
  expect(pids.filter((p) => p.role === 'view')).toHaveLength(4);
  expect(pids.filter((p) => p.role === 'strongswan').length).toBeGreaterThan(0);

  const r = await lab.down();
  expect(r.found).toBe(true);
  expect(r.warnings).toEqual([]);
  expect(lab.leftovers(pids)).toEqual(NOTHING_LEFT);
}, 120_000);
