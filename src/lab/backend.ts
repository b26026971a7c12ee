// Where the lab's nodes are and how a command reaches them. The checks, captures, pods and
// status speak of nodes and namespaces by name and run real programs there; a backend turns
// that into an argv: `nsenter` into a node namespace on this host (the namespace lab), or a
// command over ssh into a VM (the VM lab, src/lab/vm/backend.ts). Everything else — what to
// run, what it means — is the same code for both.
import type { Capture } from './capture.ts';
import type { Runner } from './run.ts';

export interface LabBackend {
  readonly kind: 'netns' | 'vm';
  /** argv running `argv` on the node as its own services see it (its network, files and /run). */
  onNode(node: string, argv: readonly string[]): string[];
  /** argv running `argv` in a namespace of the lab: a node's, a pod's, the wire's or the upstream's. */
  inNs(ns: string, argv: readonly string[]): string[];
  /** Starts strongSwan on the node as its unit does, and waits until charon has its connections. */
  startStrongswan(node: string): Promise<void>;
  /** Stops strongSwan on the node as `systemctl stop` would. */
  stopStrongswan(node: string): Promise<void>;
  /** Whether strongSwan runs on the node: its PIDs, and in words for `status` ("running (pids 1 2)", "active"). */
  strongswanState(node: string): Promise<{ pids: number[]; detail: string }>;
  /** Throws, naming the cause, unless every node of the lab is there to be used. */
  requireUp(): void;
  /** tcpdump inside a VM (namespaces of this host are captured by capture.ts itself). */
  remoteCapture?(ns: string, dev: string, name: string, filter: string[]): Promise<Capture> | undefined;
}

/** What runs programs in the lab: any Lab is one. */
export interface LabExec {
  runner: Runner;
  backend: LabBackend;
}

/** A file as the node itself sees it (undefined if it has none). */
export async function readNodeFile(lab: LabExec, node: string, path: string): Promise<string | undefined> {
  const r = await lab.runner.run(lab.backend.onNode(node, ['cat', '--', path]), { allowFail: true, timeoutMs: 20_000 });
  return r.code === 0 ? r.stdout : undefined;
}
