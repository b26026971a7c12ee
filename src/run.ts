// Running programs for the lab. Everything the lab does to the kernel goes through a
// Runner, so tests and tools can record or replace it (zx-style injectable spawn).
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  /** Resolve with the result instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Runner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} exited ${result.code}: ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    this.name = 'CommandError';
  }
}

export const processRunner: Runner = {
  run(argv, opts = {}) {
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
      child.on('error', reject);
      child.on('close', (code) => {
        if (timer) clearTimeout(timer);
        const result = { code, stdout, stderr };
        if (code !== 0 && !opts.allowFail) reject(new CommandError(argv, result));
        else resolve(result);
      });
      child.stdin.on('error', () => {}); // the program may exit without reading its input
      child.stdin.end(opts.input ?? '');
    });
  },
};

/** Polls `probe` every `intervalMs` until it returns true; false after `timeoutMs`. */
export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface InterruptibleRunner extends Runner {
  /** From now on every new command fails at once (those already running go on). */
  interrupt(why: string): void;
}

/** A runner that can be stopped from starting commands: an interrupted check winds down fast while its cleanup runs on another runner. */
export function interruptible(runner: Runner): InterruptibleRunner {
  let reason: string | undefined;
  return {
    run(argv, opts) {
      if (reason !== undefined) return Promise.reject(new Error(reason));
      return runner.run(argv, opts);
    },
    interrupt(why) {
      reason = why;
    },
  };
}
