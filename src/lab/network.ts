// The lab's machines and wires: network namespaces and the underlay between them, built
// with a handful of `ip -batch` runs, every one inside a lab namespace (the root namespace
// gets nothing: no link, address or route).
import { readdirSync } from 'node:fs';
import type { Runner } from '../run.ts';
import { NETNS_DIR } from '../check/target.ts';
import { allPods, labNamespaces, nodeBatch, ownedBy, upstreamBatch, wireBatch, type LabTopology } from './topology.ts';

export function ipBatch(runner: Runner, ns: string | undefined, lines: string[]) {
  const argv = ns === undefined ? ['ip', '-batch', '-'] : ['ip', '-n', ns, '-batch', '-'];
  return runner.run(argv, { input: lines.join('\n') + '\n', timeoutMs: 30_000 });
}

/** argv running a command in a plain lab namespace (pods, wire, upstream; no mount view). */
export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=${NETNS_DIR}/${ns}`, ...argv];
}

/** Existing namespaces whose name carries the lab's prefix. */
export function prefixedNamespaces(prefix: string): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((n) => ownedBy(prefix, n));
  } catch {
    return [];
  }
}

/** Namespaces, then the underlay (bridge + one veth pair per machine), then addresses and routes. */
export async function buildNetwork(runner: Runner, t: LabTopology): Promise<void> {
  await ipBatch(
    runner,
    undefined,
    labNamespaces(t).map((ns) => `netns add ${ns}`),
  );
  await ipBatch(runner, t.wire.ns, wireBatch(t));
  await Promise.all([
    ipBatch(runner, t.upstream.ns, upstreamBatch(t)),
    ...t.nodes.map((n) => ipBatch(runner, n.ns, nodeBatch(t, n))),
    // The runtime's part of a pod sandbox: its loopback (CNI only does eth0).
    ...allPods(t).map((p) => ipBatch(runner, p.ns, ['link set lo up'])),
  ]);
}

/** Deletes the given namespaces that still exist; everything inside goes with them. */
export async function deleteNamespaces(runner: Runner, names: string[]): Promise<string[]> {
  const doomed = names.filter((n) => new Set(readdirSafe()).has(n));
  if (!doomed.length) return [];
  // -force: one that vanished meanwhile does not stop the others.
  await runner.run(['ip', '-force', '-batch', '-'], { input: doomed.map((ns) => `netns del ${ns}`).join('\n') + '\n', allowFail: true, timeoutMs: 30_000 });
  const left = new Set(readdirSafe());
  const failed = doomed.filter((n) => left.has(n));
  if (failed.length) throw new Error(`could not delete the namespaces ${failed.join(', ')}`);
  return doomed;
}

function readdirSafe(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}
