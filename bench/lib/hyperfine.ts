// Whole commands timed with hyperfine (apt: hyperfine), reported the way every bench reports:
// each command's time and its ratio to a reference measured in the same run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Timed {
  label: string;
  command: string;
  /** Run before each timing run (hyperfine --prepare), not timed. */
  prepare?: string;
}

export interface Times {
  label: string;
  /** Seconds. */
  mean: number;
  stddev: number;
  median: number;
  min: number;
  max: number;
  /** CPU seconds, mean per run. */
  user: number;
  system: number;
  runs: number;
}

export interface HyperfineOptions {
  runs: number;
  warmup?: number;
  cwd: string;
  /** argv before `hyperfine` (e.g. `ip netns exec <ns>`: the commands run there). */
  prefix?: string[];
}

/** Times every command (interleaved by hyperfine, one after the other), each with `o.runs` runs. */
export function hyperfine(commands: Timed[], o: HyperfineOptions): Times[] {
  const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-hyperfine-'));
  try {
    const json = join(dir, 'times.json');
    const args = ['--style', 'none', '--warmup', String(o.warmup ?? 1), '--runs', String(o.runs), '--export-json', json];
    for (const c of commands) args.push(...(c.prepare ? ['--prepare', c.prepare] : ['--prepare', 'true']), '-n', c.label, c.command);
    const argv = [...(o.prefix ?? []), 'hyperfine', ...args];
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: o.cwd });
    if (r.error) throw new Error(`hyperfine is required (apt-get install hyperfine): ${r.error.message}`);
    if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr.trim()}`);
    const data = JSON.parse(readFileSync(json, 'utf8')) as {
      results: { command: string; mean: number; stddev: number; median: number; min: number; max: number; user: number; system: number; times: number[] }[];
    };
    return data.results.map((x) => ({
      label: x.command,
      mean: x.mean,
      stddev: x.stddev,
      median: x.median,
      min: x.min,
      max: x.max,
      user: x.user,
      system: x.system,
      runs: x.times.length,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One line per command: median, range, CPU, and the ratio of its median to `reference`'s. */
export function formatTimes(times: Times[], reference?: string): string[] {
  const ref = times.find((t) => t.label === reference);
  const width = Math.max(...times.map((t) => t.label.length));
  return times.map((t) => {
    const ratio = ref && t !== ref ? `  ${(t.median / ref.median).toFixed(2)}× ${reference}` : '';
    return `  ${t.label.padEnd(width)}  median ${ms(t.median)} (${ms(t.min)} … ${ms(t.max)}, n=${t.runs})  CPU ${ms(t.user + t.system)}${ratio}`;
  });
}

const ms = (s: number) => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
