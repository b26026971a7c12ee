// Traffic inside the lab: real ping from a pod's, node's or the upstream's namespace, and a
// small pool so a matrix of pings keeps both cores busy without flooding them.
import type { ClusterExec } from './target.ts';

export interface PingOptions {
  count?: number;
  /** Seconds to wait for each reply (fractions allowed). */
  wait?: number;
  /** Seconds between packets. */
  interval?: number;
  /** ICMP payload bytes. */
  size?: number;
  /** Set DF and never fragment locally (`-M do`). */
  dontFragment?: boolean;
}

export interface PingResult {
  ok: boolean;
  received: number;
  /** ping's own words when it failed (local error, frag needed, unreachable). */
  why?: string;
}

export async function ping(lab: ClusterExec, ns: string, dst: string, o: PingOptions = {}): Promise<PingResult> {
  const argv = ['ping', '-n', '-c', String(o.count ?? 1), '-W', String(o.wait ?? 1)];
  if (o.interval !== undefined) argv.push('-i', String(o.interval));
  if (o.size !== undefined) argv.push('-s', String(o.size));
  if (o.dontFragment) argv.push('-M', 'do');
  const r = await lab.runner.run(lab.backend.inNs(ns, [...argv, dst]), { allowFail: true, timeoutMs: 30_000 });
  const received = Number(/(\d+) (?:packets )?received/.exec(r.stdout)?.[1] ?? 0);
  const ok = r.code === 0 && received > 0;
  if (ok) return { ok, received };
  const why = (r.stdout + r.stderr)
    .split('\n')
    .map((l) => l.trim())
    .find((l) => /error|Frag needed|Unreachable|unreachable|too long|Network|Invalid/i.test(l));
  return { ok, received, ...(why && { why }) };
}

/** One reply within `tries` single pings. */
export async function reaches(lab: ClusterExec, ns: string, dst: string, tries = 2, wait = 1): Promise<boolean> {
  for (let i = 0; i < tries; i++) if ((await ping(lab, ns, dst, { wait })).ok) return true;
  return false;
}

/**
 * Who reaches whom, found out once per `check`: the ping matrix records every probe, later
 * checks (MTU path, fail-closed baseline) ask here before pinging again.
 */
export class Reachability {
  private readonly known = new Map<string, boolean>();
  constructor(private readonly lab: ClusterExec) {}

  async reaches(ns: string, dst: string): Promise<boolean> {
    const key = `${ns}>${dst}`;
    let ok = this.known.get(key);
    if (ok === undefined) this.known.set(key, (ok = await reaches(this.lab, ns, dst)));
    return ok;
  }
}

/** Maps `items` through `fn` with at most `limit` running at once, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
