// Render benchmark: cold (no state: every key generated) and warm (everything reused)
// renders of the default cluster, a warm render of 254 minions, and the key-type choice
// measured against RSA-2048 in the same run. Whole commands are timed with hyperfine.
import { spawnSync } from 'node:child_process';
import { generateKeyPair } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runRender } from '../src/render/pipeline.ts';
import { bigClusterYaml, clusterYaml, repoRoot } from '../test/helpers/cluster.ts';

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

function hyperfine(label: string, command: string, prepare?: string): void {
  const args = ['--style', 'basic', '--warmup', '1', '--runs', '5', '-n', label, ...(prepare ? ['--prepare', prepare] : []), command];
  const r = spawnSync('hyperfine', args, { encoding: 'utf8', cwd: repoRoot });
  if (r.error) throw new Error(`hyperfine is required (apt install hyperfine): ${r.error.message}`);
  process.stdout.write(r.stdout.split('\n').filter((l) => /Time|Range|Benchmark/.test(l)).map((l) => `  ${l.trim()}`).join('\n') + '\n');
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
    console.log(`  default cluster (4 nodes, 23 credentials)   cold ${cold.toFixed(0)} ms (target < ${COLD_TARGET_MS} ms: ${cold < COLD_TARGET_MS ? 'met' : 'MISSED'})   warm ${warm.toFixed(0)} ms`);
    console.log(`  same cluster with pki.keyAlgorithm rsa-2048 cold ${coldRsa.toFixed(0)} ms   → ECDSA P-256 cold render is ${(coldRsa / cold).toFixed(1)}× faster`);
    console.log(`  254 minions (255 nodes, 32 385 tunnels)     warm ${warmBig.toFixed(0)} ms`);
    console.log(`  key generation per key: ECDSA P-256 ${ec.toFixed(2)} ms, RSA-2048 ${rsaKey.toFixed(0)} ms (${(rsaKey / ec).toFixed(0)}×)`);
    console.log('whole command (hyperfine, includes Node + tsx start-up):');
    const cmd = (dir: string) => `node --import tsx src/cli.ts render --config ${dir}/cluster.yaml --out ${dir}/out --state ${dir}/state`;
    hyperfine('cold render, default cluster', cmd(def), `rm -rf ${def}/state ${def}/out`);
    hyperfine('warm render, default cluster', cmd(def));
    hyperfine('warm render, 254 minions', cmd(big));
    return cold < COLD_TARGET_MS ? 0 : 1;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
