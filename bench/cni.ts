// `npm run bench cni`: ipsec-cni against the Go reference plugins (bridge + host-local from
// /usr/lib/cni), by the raw CNI protocol, inside network namespaces, in one run:
//   - ADD and DEL p50/p90 over >= 50 pods per round (each pod its own fresh netns),
//   - wall time of 50 ADDs, 8 in parallel,
//   - startup floor (CNI_COMMAND=VERSION) with hyperfine,
// and prints the ratios against the targets (ADD p50 <= 1.5x, DEL p50 <= 1.0x, parallel
// wall <= 1.2x). Calls are timed by a bash driver inside the node namespace (as in the lab's
// bench-ref.sh): both plugins pay the same fork+exec, the two are interleaved pod by pod
// (and round by round for the parallel runs) so load from other work hits both alike.
//
// Options: --pods=N (default 50) --parallel=P (8) --rounds=R (2) --strict (exit 1 on a missed target)
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPluginBuilt, REF_PLUGINS } from '../test/helpers/cni.ts';
import { netnsLab, run as exec } from '../test/helpers/netns.ts';
import { median } from './lib/stats.ts';

interface Options {
  pods: number;
  parallel: number;
  rounds: number;
  strict: boolean;
}

function options(argv: string[]): Options {
  const get = (name: string, dflt: number) => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    const n = a ? Number(a.split('=')[1]) : dflt;
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
    return n;
  };
  return { pods: get('pods', 50), parallel: get('parallel', 8), rounds: get('rounds', 2), strict: argv.includes('--strict') };
}

// The driver, run inside the node namespace: $1 dir, $2 netns prefix, $3 pods, $4 parallel,
// $5 rounds, $6 reference plugin dir. Configs are $1/ours.json and $1/ref.json; every call
// appends "t0 t1 rc" to a raw file, which run() turns into statistics.
// (Plain $VAR only: this is a JS template string.)
// biome-ignore lint/complexity/noUselessStringRaw: keeps any backslash a later edit adds to the script bash's, not JavaScript's.
const DRIVER = String.raw`#!/bin/bash
set -u
D=$1; PFX=$2; N=$3; P=$4; R=$5; REF=$6
export CNI_PATH=$REF CNI_IFNAME=eth0 IPSEC_CNI_LOG=/dev/null D REF
call() { # plugin command containerid netns stdin stdout rawfile
  local bin=$D/ipsec-cni; [ $1 = ref ] && bin=$REF/bridge
  local t0=$EPOCHREALTIME
  CNI_COMMAND=$2 CNI_CONTAINERID=$3 CNI_NETNS=/run/netns/$4 $bin < $5 > $6 2>>$D/stderr.log
  local rc=$? t1=$EPOCHREALTIME
  echo "$t0 $t1 $rc" >> $7
}
export -f call
delconf() { jq -c --slurpfile r $2 '. + {prevResult: $r[0]}' $D/$1.json > $3; }
for i in $(seq 1 30); do t0=$EPOCHREALTIME; /bin/true; echo "$t0 $EPOCHREALTIME 0" >> $D/spawn.raw; done
# warm-up: the first ADD creates the bridge; timed apart from the statistics
for p in ref ours; do
  ip netns add $PFX-w-$p
  call $p ADD w-$p $PFX-w-$p $D/$p.json $D/w.$p.out $D/$p.first-add.raw
  delconf $p $D/w.$p.out $D/w.$p.del
  call $p DEL w-$p $PFX-w-$p $D/w.$p.del /dev/null $D/$p.warm-del.raw
  ip netns del $PFX-w-$p
done
mkdir -p $D/out $D/par
for r in $(seq 1 $R); do
  for i in $(seq 1 $N); do ip netns add $PFX-s$r-$i-ref; ip netns add $PFX-s$r-$i-ours; done
  for i in $(seq 1 $N); do
    if (( i % 2 )); then order="ref ours"; else order="ours ref"; fi
    for p in $order; do call $p ADD s$r-$i-$p $PFX-s$r-$i-$p $D/$p.json $D/out/s$r-$i.$p.json $D/$p.ADD.raw; done
  done
  for i in $(seq 1 $N); do
    for p in ref ours; do delconf $p $D/out/s$r-$i.$p.json $D/out/s$r-$i.$p.del; done
    if (( i % 2 )); then order="ours ref"; else order="ref ours"; fi
    for p in $order; do call $p DEL s$r-$i-$p $PFX-s$r-$i-$p $D/out/s$r-$i.$p.del /dev/null $D/$p.DEL.raw; done
  done
  for i in $(seq 1 $N); do ip netns del $PFX-s$r-$i-ref; ip netns del $PFX-s$r-$i-ours; done
  # parallel: N ADDs, P at a time; which plugin goes first alternates by round
  if (( r % 2 )); then order="ref ours"; else order="ours ref"; fi
  for p in $order; do
    for i in $(seq 1 $N); do ip netns add $PFX-p$r-$i-$p; done
    times > $D/cpu.before   # children's user/sys CPU so far (a builtin: no fork)
    t0=$EPOCHREALTIME
    seq 1 $N | xargs -P $P -I{} bash -c "call $p ADD p$r-{}-$p $PFX-p$r-{}-$p $D/$p.json $D/par/p$r-{}.$p.json $D/$p.ADDpar.raw"
    echo "$t0 $EPOCHREALTIME 0" >> $D/$p.parallel.raw
    times > $D/cpu.after
    echo "$(tail -1 $D/cpu.before) $(tail -1 $D/cpu.after)" >> $D/$p.cpu.raw
    for i in $(seq 1 $N); do
      delconf $p $D/par/p$r-$i.$p.json $D/par/p$r-$i.$p.del
      call $p DEL p$r-$i-$p $PFX-p$r-$i-$p $D/par/p$r-$i.$p.del /dev/null $D/$p.DELpar.raw
      ip netns del $PFX-p$r-$i-$p
    done
  done
done
`;

interface Stats {
  n: number;
  failed: number;
  p50: number;
  p90: number;
}

function readRaw(file: string): { ms: number; rc: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [t0, t1, rc] = l.split(' ').map(Number) as [number, number, number];
      return { ms: (t1 - t0) * 1000, rc };
    });
}

function stats(samples: { ms: number; rc: number }[]): Stats {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const rank = (q: number) => ms[Math.min(ms.length - 1, Math.max(0, Math.ceil(q * ms.length) - 1))] ?? NaN;
  return { n: ms.length, failed: samples.filter((s) => s.rc !== 0).length, p50: rank(0.5), p90: rank(0.9) };
}

/** CPU seconds (user+sys) the parallel rounds' processes used, per ADD, from bash's `times`. */
function cpuPerAdd(file: string, pods: number): number {
  if (!existsSync(file)) return NaN;
  const sec = (t: string) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  };
  const perRound = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [u0, s0, u1, s1] = l.trim().split(/\s+/).map(sec) as [number, number, number, number];
      return ((u1 - u0 + (s1 - s0)) * 1000) / pods;
    });
  return median(perRound);
}

/** Addresses handed out in the parallel runs: every ADD must have one, none twice per round. */
function parallelCheck(dir: string, plugin: string, rounds: number, pods: number): string[] {
  const problems: string[] = [];
  for (let r = 1; r <= rounds; r++) {
    const ips: string[] = [];
    for (let i = 1; i <= pods; i++) {
      const f = join(dir, 'par', `p${r}-${i}.${plugin}.json`);
      try {
        ips.push(JSON.parse(readFileSync(f, 'utf8')).ips[0].address);
      } catch {
        problems.push(`${plugin} round ${r} pod ${i}: no result`);
      }
    }
    const dup = ips.filter((ip, k) => ips.indexOf(ip) !== k);
    if (dup.length) problems.push(`${plugin} round ${r}: duplicate addresses ${[...new Set(dup)].join(', ')}`);
  }
  return problems;
}

async function startup(plugin: string, dir: string): Promise<Record<string, number> | string> {
  const hf = await exec(['sh', '-c', 'command -v hyperfine'], { allowFail: true });
  if (hf.code !== 0) return 'hyperfine not installed (scripts/test-deps installs it)';
  const out = join(dir, 'hyperfine.json');
  await exec(
    [
      'hyperfine',
      '-N',
      '-w',
      '5',
      '-r',
      '100',
      '--export-json',
      out,
      '-n',
      'ipsec-cni',
      plugin,
      '-n',
      'go-bridge',
      `${REF_PLUGINS}/bridge`,
      '-n',
      'node-floor',
      'node -e 0',
    ],
    { env: { ...process.env, CNI_COMMAND: 'VERSION', IPSEC_CNI_LOG: '/dev/null' } as Record<string, string> },
  );
  const res = JSON.parse(readFileSync(out, 'utf8')).results as { command: string; median: number }[];
  return Object.fromEntries(res.map((r) => [r.command, r.median * 1000]));
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

export async function run(argv: string[]): Promise<number> {
  const o = options(argv);
  const plugin = assertPluginBuilt();
  for (const p of ['bridge', 'host-local'])
    if (!existsSync(join(REF_PLUGINS, p))) throw new Error(`${REF_PLUGINS}/${p} missing (apt: containernetworking-plugins)`);
  const lab = netnsLab('cnbench');
  const dir = mkdtempSync(join(tmpdir(), lab.prefix));
  try {
    const node = await lab.add('node');
    await exec(['cp', plugin, join(dir, 'ipsec-cni')]);
    writeFileSync(join(dir, 'driver.sh'), DRIVER);
    writeFileSync(
      join(dir, 'ours.json'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'bench-ours',
        type: 'ipsec-cni',
        bridge: 'bn-ours',
        subnet: '10.250.0.0/22',
        dataDir: join(dir, 'ipam'),
        logFile: '/dev/null',
      }),
    );
    // The lab's ref-bridge.json, with its own bridge, subnet and host-local directory.
    writeFileSync(
      join(dir, 'ref.json'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'bench-ref',
        type: 'bridge',
        bridge: 'bn-ref',
        isGateway: true,
        ipMasq: false,
        ipam: { type: 'host-local', dataDir: join(dir, 'host-local'), ranges: [[{ subnet: '10.251.0.0/22' }]], routes: [{ dst: '0.0.0.0/0' }] },
      }),
    );
    console.log(
      `ipsec-cni vs Go reference bridge+host-local: ${o.rounds} round(s) x ${o.pods} pods, parallel ${o.pods} ADDs ${o.parallel} at a time, inside netns ${node}`,
    );
    const prefix = lab.prefix.slice(0, -1); // the driver adds "-…": names stay under the lab's prefix
    await exec(['ip', 'netns', 'exec', node, 'bash', join(dir, 'driver.sh'), dir, prefix, String(o.pods), String(o.parallel), String(o.rounds), REF_PLUGINS], {
      timeoutMs: 15 * 60_000,
    });

    const s = (p: string, what: string) => stats(readRaw(join(dir, `${p}.${what}.raw`)));
    const add = { ours: s('ours', 'ADD'), ref: s('ref', 'ADD') };
    const del = { ours: s('ours', 'DEL'), ref: s('ref', 'DEL') };
    const par = {
      ours: median(readRaw(join(dir, 'ours.parallel.raw')).map((x) => x.ms)),
      ref: median(readRaw(join(dir, 'ref.parallel.raw')).map((x) => x.ms)),
    };
    const parRounds = {
      ours: readRaw(join(dir, 'ours.parallel.raw'))
        .map((x) => f1(x.ms))
        .join(', '),
      ref: readRaw(join(dir, 'ref.parallel.raw'))
        .map((x) => f1(x.ms))
        .join(', '),
    };
    const cpu = { ours: cpuPerAdd(join(dir, 'ours.cpu.raw'), o.pods), ref: cpuPerAdd(join(dir, 'ref.cpu.raw'), o.pods) };
    const first = { ours: readRaw(join(dir, 'ours.first-add.raw'))[0]?.ms ?? NaN, ref: readRaw(join(dir, 'ref.first-add.raw'))[0]?.ms ?? NaN };
    const spawn = stats(readRaw(join(dir, 'spawn.raw'))).p50;
    const boot = await startup(plugin, dir);

    const rows: [string, number, number, number | undefined][] = [
      ['ADD p50 (ms)', add.ours.p50, add.ref.p50, 1.5],
      ['ADD p90 (ms)', add.ours.p90, add.ref.p90, undefined],
      ['DEL p50 (ms)', del.ours.p50, del.ref.p50, 1.0],
      ['DEL p90 (ms)', del.ours.p90, del.ref.p90, undefined],
      [`${o.pods} ADDs, ${o.parallel} parallel, wall (ms)`, par.ours, par.ref, 1.2],
      ['CPU per ADD in the parallel runs (ms)', cpu.ours, cpu.ref, undefined],
      ['first ADD, creates the bridge (ms)', first.ours, first.ref, undefined],
    ];
    if (typeof boot === 'object') rows.push(['startup, CNI_COMMAND=VERSION (ms)', boot['ipsec-cni']!, boot['go-bridge']!, undefined]);
    console.log(`\n${'measure'.padEnd(38)}${'ipsec-cni'.padStart(11)}${'reference'.padStart(11)}${'ratio'.padStart(8)}   target`);
    let missed = 0;
    for (const [name, ours, ref, target] of rows) {
      const ratio = ours / ref;
      const verdict = target === undefined ? '' : ratio <= target ? `<= ${target.toFixed(1)}x  met` : `<= ${target.toFixed(1)}x  MISSED`;
      if (target !== undefined && !(ratio <= target)) missed++;
      console.log(`${name.padEnd(38)}${f1(ours).padStart(11)}${f1(ref).padStart(11)}${(ratio.toFixed(2) + 'x').padStart(8)}   ${verdict}`);
    }
    console.log(
      `\nparallel rounds (ms): ipsec-cni ${parRounds.ours}; reference ${parRounds.ref} (wall time follows the machine's load; CPU per ADD much less)`,
    );
    console.log(
      `samples: ADD ${add.ours.n}/${add.ref.n}, DEL ${del.ours.n}/${del.ref.n} (ours/ref); bash fork+exec of /bin/true ${f1(spawn)} ms is inside every per-call figure`,
    );
    if (typeof boot === 'object') console.log(`startup floor: a Node.js plugin could not start faster than 'node -e 0' = ${f1(boot['node-floor']!)} ms`);
    else console.log(`startup: ${boot}`);

    const problems = [
      ...(['ours', 'ref'] as const).flatMap((p) => [
        ...(add[p].failed ? [`${p}: ${add[p].failed} ADD(s) failed`] : []),
        ...(del[p].failed ? [`${p}: ${del[p].failed} DEL(s) failed`] : []),
        ...(['ADDpar', 'DELpar', 'first-add', 'warm-del'] as const).flatMap((w) => {
          const failed = readRaw(join(dir, `${p}.${w}.raw`)).filter((x) => x.rc !== 0).length;
          return failed ? [`${p}: ${failed} ${w} call(s) failed`] : [];
        }),
        ...parallelCheck(dir, p, o.rounds, o.pods),
      ]),
    ];
    const leftovers = JSON.parse(readFileSync(join(dir, 'ipam', 'bench-ours.json'), 'utf8')).allocations as Record<string, unknown>;
    if (Object.keys(leftovers).length) problems.push(`ours: ${Object.keys(leftovers).length} allocation(s) left after all DELs`);
    console.log(
      problems.length
        ? `\nPROBLEMS:\n  ${problems.join('\n  ')}`
        : '\nall ADDs and DELs succeeded; no address handed out twice in any parallel round; store empty at the end',
    );
    if (problems.length) {
      const err = readFileSync(join(dir, 'stderr.log'), 'utf8').trim();
      if (err) console.log(`plugin stderr:\n${err.split('\n').slice(0, 10).join('\n')}`);
    }
    return problems.length || (o.strict && missed) ? 1 : 0;
  } finally {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
