// How `kube-ipsec provision` reaches a node: run a command line there with streams in and
// out. The ssh2 implementation is the real one (ssh.ts); the local one runs the command
// here, which is what tests inject (as zx injects spawn) to drive the node side of a
// session against a scratch root without a network.
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

/** A failure to reach, trust or provision a node; its message is complete (what, why, fix). */
export class ShipError extends Error {
  override name = 'ShipError';
}

export interface RemoteProcess {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Settles when the command has ended and its output is drained. */
  done: Promise<{ code: number | null; signal: string | null }>;
}

export interface Transport {
  /** Where commands run, for messages: `root@192.168.10.21:22`. */
  readonly description: string;
  /** Runs a POSIX shell command line on the node, as root (transports add sudo where needed). */
  exec(command: string): Promise<RemoteProcess>;
  close(): void;
}

/** Runs commands on this machine with `sh -c`, with extra environment. */
export function localTransport(env: Record<string, string> = {}): Transport {
  return {
    description: 'local',
    async exec(command) {
      const child = spawn('sh', ['-c', command], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
      const done = new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code, signal) => resolve({ code, signal }));
      });
      return { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, done };
    },
    close() {},
  };
}
