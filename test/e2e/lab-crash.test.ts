// `down` after `up` was killed half way (SIGKILL, no cleanup of its own): it finds what the
// crashed run recorded — and the strongSwan daemons whose `ipsec start` outlived the crash,
// which nothing recorded — and removes it all. Once after those daemons came up, once at
// once (while their starts are still in flight).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/run.ts';
import { readState } from '../../src/lab/state.ts';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { defaultClusterYaml, repoRoot } from '../helpers/cluster.ts';
import { e2eLab, NOTHING_LEFT } from './lab-fixture.ts';

describe.each([
  { when: 'once the surviving starts brought their charons up', tag: 'lcra', settle: true },
  { when: 'at once, with starts still in flight', tag: 'lcrb', settle: false },
])('down after an up killed half way, $when', ({ tag, settle }) => {
  const lab = e2eLab(tag);
  afterAll(() => lab.cleanup());

  it('leaves no namespace, link, process or mount', async () => {
    lab.writeConfig(defaultClusterYaml());
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(repoRoot, 'test/e2e/lab-crash-child.ts'),
        lab.configFile,
        lab.stateDir,
        lab.prefix,
        assertPluginBuilt(),
        settle ? 'settled' : 'in-flight',
      ],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => ((out += d), out.includes('crash point') && resolve()));
      child.on('exit', () => reject(new Error(`the child exited before its crash point:\n${out}`)));
    });
    child.kill('SIGKILL');
    await exited;

    expect(readState(lab.stateDir)!.phase).toBe('starting');
    if (settle) expect(await waitFor(async () => lab.pids().filter((p) => p.comm === 'charon').length === 3, 15_000)).toBe(true);
    const before = lab.snapshot();
    expect(before.pids.filter((p) => p.role === 'view')).toHaveLength(4);

    const r = await lab.down();
    expect(r.found).toBe(true);
    expect(r.warnings).toEqual([]);
    // starter takes its charon down with it when stopped
    expect(r.processes.stopped.map((p) => p.comm)).toContain(settle ? 'starter' : 'sleep');
    expect(lab.leftovers(before)).toEqual(NOTHING_LEFT);
  }, 120_000);
});
