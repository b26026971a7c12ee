// `up` (namespaces and VMs alike) refuses to start over a lab still recorded in its state
// directory, or beside namespaces that another lab holds under the same prefix.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { STATE_FILE } from '../../src/lab/state.ts';
import { assertRoomForLab } from '../../src/lab/up.ts';

const prefix = `room${process.pid.toString(36).slice(-4)}`;
const squatter = `${prefix}-master`;
const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-labroom-'));
afterAll(() => {
  spawnSync('ip', ['netns', 'del', squatter], { stdio: 'ignore' }); // absent when a test failed before creating it
  rmSync(dir, { recursive: true, force: true });
});

describe('assertRoomForLab', () => {
  it('lets a lab start where nothing is recorded and no namespace has its prefix', () => {
    expect(() => assertRoomForLab(join(dir, 'empty'), prefix)).not.toThrow();
  });

  it('refuses a state directory that still records a lab, naming it and the fix', () => {
    const stateDir = join(dir, 'recorded');
    mkdirSync(stateDir);
    writeFileSync(join(stateDir, STATE_FILE), JSON.stringify({ version: 1, prefix: 'old1' }));
    expect(() => assertRoomForLab(stateDir, prefix)).toThrow(
      `a lab (prefix old1) is already recorded in ${join(stateDir, STATE_FILE)}: bring it down first (\`npm run lab -- down\`)`,
    );
  });

  it('refuses a prefix whose namespaces exist, naming them and the option to change', () => {
    execFileSync('ip', ['netns', 'add', squatter]);
    expect(() => assertRoomForLab(join(dir, 'empty'), prefix)).toThrow(
      `namespaces with the prefix ${prefix}- already exist (${squatter}): another lab uses this prefix; choose another with --prefix`,
    );
  });
});
