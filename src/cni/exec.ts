// Running other programs (delegated IPAM plugins). Commands depend on the Runner interface
// only; the process-spawning one is the single implementation.
import { isExecutable, joinPath } from './sys/fs.ts';

interface RunResult {
  /** Exit status; null when killed by a signal or not started. */
  status: number | null;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started at all. */
  error?: Error;
}

export interface Runner {
  run(argv: readonly string[], input?: string, env?: Record<string, string | undefined>): RunResult;
}

/**
 * Bun.spawnSync rather than node:child_process, whose import alone adds ~4 ms to every
 * plugin start (measured); only the compiled plugin uses this runner.
 */
export const processRunner: Runner = {
  run(argv, input, env) {
    try {
      const r = Bun.spawnSync({
        cmd: [...argv],
        stdin: new TextEncoder().encode(input ?? ''),
        stdout: 'pipe',
        stderr: 'pipe',
        ...(env ? { env } : {}),
      });
      return { status: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    } catch (e) {
      return { status: null, stdout: '', stderr: '', error: e as Error };
    }
  },
};

/** First executable `name` in `dirs`. */
export function findExecutable(name: string, dirs: readonly string[]): string | undefined {
  for (const d of dirs) {
    const p = joinPath(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}
