// Running other programs (iproute2, nsenter, delegated IPAM plugins). Commands depend on the
// Runner interface only; the process-spawning one is the single implementation.
import { accessSync, constants } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export interface RunResult {
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

export const processRunner: Runner = {
  run(argv, input, env) {
    const r = spawnSync(argv[0]!, argv.slice(1), {
      input: input ?? '',
      env: env as NodeJS.ProcessEnv | undefined,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: r.error } : {}) };
  },
};

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First executable `name` in `dirs`. */
export function findExecutable(name: string, dirs: readonly string[]): string | undefined {
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

/**
 * System tools (ip, nsenter) by absolute path: runtimes may start plugins with a minimal
 * PATH, so the usual sbin directories are searched after it.
 */
export function systemTool(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  const dirs = [...envPath.split(':').filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return findExecutable(name, dirs);
}
