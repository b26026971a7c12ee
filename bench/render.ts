// Render benchmark: cold (no state: every key generated) and warm (everything reused)
// renders of the default cluster, a warm render of 254 minions, and the key-type choice
// measured against RSA-2048 in the same run. Whole commands are timed with hyperfine,
// start-up included: the built CLI (bin/kube-ipsec) against `node -e 0`, the floor of any
// Node.js command, and against the same command transpiled at start by tsx (how it ran
// before it was built).
import { generateKeyPair } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runRender } from '../src/render/pipeline.ts';
import { bigClusterYaml, clusterYaml, repoRoot } from '../test/helpers/cluster.ts';
import { formatTimes, hyperfine } from './lib/hyperfine.ts';

const COLD_TARGET_MS = 3000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeRender(dir: string, cold: boolean, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (cold) {
      rmSync(join(dir, 'state'), { recursive: true, force: true });
      rmSync(join(dir, 'out'), { recursive: true, force: true });
    }
    const t = performance.now();
    await runRender({ configFile: join(dir, 'cluster.yaml'), outDir: join(dir, 'out'), stateDir: join(dir, 'state') });
    times.push(performance.now() - t);
  }
  return times;
}

function clusterDir(root: string, name: string, yaml: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cluster.yaml'), yaml);
  return dir;
}

async function keygenMs(type: 'rsa' | 'ec', n: number): Promise<number> {
  const gen = promisify(generateKeyPair) as (t: string, o: object) => Promise<unknown>;
  const t = performance.now();
  await Promise.all(Array.from({ length: n }, () => gen(type, type === 'rsa' ? { modulusLength: 2048 } : { namedCurve: 'P-256' })));
  return performance.now() - t;
}

export async function run(argv: string[]): Promise<number> {
  const root = mkdtempSync(join(tmpdir(), 'kube-ipsec-bench-render-'));
  try {
    const quick = argv.includes('--quick');
    const runs = quick ? 3 : 5;
    const def = clusterDir(root, 'default', clusterYaml());
    const rsa = clusterDir(root, 'rsa', clusterYaml({ 'pki.keyAlgorithm': 'rsa-2048' }));
    const big = clusterDir(root, 'big', bigClusterYaml(254));

    const cold = median(await timeRender(def, true, runs));
    const warm = median(await timeRender(def, false, runs));
    const coldRsa = median(await timeRender(rsa, true, quick ? 1 : 3));
    await timeRender(big, true, 1);
    const warmBig = median(await timeRender(big, false, quick ? 2 : 3));
    const ec = (await keygenMs('ec', 24)) / 24;
    const rsaKey = (await keygenMs('rsa', 8)) / 8;

    console.log('render, in process (median):');
    console.log(
      `  default cluster (4 nodes, 23 credentials)   cold ${cold.toFixed(0)} ms (target < ${COLD_TARGET_MS} ms: ${cold < COLD_TARGET_MS ? 'met' : 'MISSED'})   warm ${warm.toFixed(0)} ms`,
    );
    console.log(
      `  same cluster with pki.keyAlgorithm rsa-2048 cold ${coldRsa.toFixed(0)} ms   → ECDSA P-256 cold render is ${(coldRsa / cold).toFixed(1)}× faster`,
    );
    console.log(`  254 minions (255 nodes, 32 385 tunnels)     warm ${warmBig.toFixed(0)} ms`);
    console.log(`  key generation per key: ECDSA P-256 ${ec.toFixed(2)} ms, RSA-2048 ${rsaKey.toFixed(0)} ms (${(rsaKey / ec).toFixed(0)}×)`);
    const runs5 = { runs: quick ? 3 : 5, cwd: repoRoot };
    const cmd = (dir: string) => `node bin/kube-ipsec render --config ${dir}/cluster.yaml --out ${dir}/out --state ${dir}/state`;
    console.log('whole command (hyperfine; the built CLI, Node start-up included):');
    const whole = hyperfine(
      [
        { label: 'cold render, default cluster', command: cmd(def), prepare: `rm -rf ${def}/state ${def}/out` },
        { label: 'warm render, default cluster', command: cmd(def) },
        { label: 'warm render, 254 minions', command: cmd(big) },
      ],
      runs5,
    );
    for (const l of formatTimes(whole)) console.log(l);
    console.log('start-up (hyperfine): `render --help`, built and transpiled at start, against the floor of any Node.js command:');
    const startup = hyperfine(
      [
        { label: 'node -e 0', command: 'node -e 0' },
        { label: 'built: node bin/kube-ipsec render --help', command: 'node bin/kube-ipsec render --help' },
        { label: 'built, through npm: npm run render -- --help', command: 'npm run --silent render -- --help' },
        { label: 'tsx: node --import tsx src/cli.ts render --help', command: 'node --import tsx src/cli.ts render --help' },
      ],
      { runs: quick ? 5 : 20, warmup: 2, cwd: repoRoot },
    );
    for (const l of formatTimes(startup, 'node -e 0')) console.log(l);
    console.log(`  the built render --help starts ${(startup[3]!.median / startup[1]!.median).toFixed(1)}× faster than through tsx`);
    return cold < COLD_TARGET_MS ? 0 : 1;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
