// Traffic inside the lab: real ping from a pod's, node's or the upstream's namespace, and a
// small pool so a matrix of pings keeps both cores busy without flooding them.
import { waitFor } from '../run.ts';
import type { Background, ClusterExec } from './target.ts';

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
  /** Source address to send from (`-I`): the node's own, as a hostNetwork process would. */
  source?: string;
}

export interface PingResult {
  ok: boolean;
  received: number;
  /** ping's own words when it failed (local error, frag needed, unreachable). */
  why?: string;
}

/** ping's summary line → packets sent and received (iputils and busybox alike). */
export function pingSummary(out: string): { sent: number; received: number } | undefined {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  return m ? { sent: Number(m[1]), received: Number(m[2]) } : undefined;
}

export async function ping(lab: ClusterExec, ns: string, dst: string, o: PingOptions = {}): Promise<PingResult> {
  const argv = ['ping', '-n', '-c', String(o.count ?? 1), '-W', String(o.wait ?? 1)];
  if (o.interval !== undefined) argv.push('-i', String(o.interval));
  if (o.size !== undefined) argv.push('-s', String(o.size));
  if (o.dontFragment) argv.push('-M', 'do');
  if (o.source !== undefined) argv.push('-I', o.source);
  const r = await lab.runner.run(lab.backend.inNs(ns, [...argv, dst]), { allowFail: true, timeoutMs: 30_000 });
  const received = pingSummary(r.stdout)?.received ?? 0;
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

/** TCP port the checks' listeners take inside test pods (their own network namespaces). */
export const LISTEN_PORT = 8080;

/**
 * A TCP listener in a namespace that answers every connection with `token` and closes it
 * (socat, one child per connection), on every address or only `bind`; resolves once it listens.
 */
export async function tokenListener(lab: ClusterExec, ns: string, token: string, port = LISTEN_PORT, bind?: string): Promise<Background> {
  const listen = `TCP-LISTEN:${port},fork,reuseaddr${bind ? `,bind=${bind}` : ''}`;
  return listening(
    lab,
    ns,
    port,
    await lab.backend.background(ns, ['socat', '-T', '10', listen, `SYSTEM:echo ${token}`], `listener ${token} on ${bind ?? ''}:${port} in ${ns}`),
  );
}

/** A TCP listener in a namespace that writes everything its one connection brings to its output (what stop() returns). */
export async function sinkListener(lab: ClusterExec, ns: string, port: number): Promise<Background> {
  return listening(lab, ns, port, await lab.backend.background(ns, ['socat', '-u', `TCP-LISTEN:${port},reuseaddr`, 'STDOUT'], `sink on :${port} in ${ns}`));
}

/** `bg` once something listens on `port` in `ns` (ss); stopped, and an error, if nothing does within 15 s. */
async function listening(lab: ClusterExec, ns: string, port: number, bg: Background): Promise<Background> {
  const up = await waitFor(
    async () => {
      const r = await lab.runner.run(lab.backend.inNs(ns, ['ss', '-Hltn', `sport = :${port}`]), { allowFail: true, timeoutMs: 20_000 });
      return r.stdout.trim() !== '';
    },
    15_000,
    100,
  );
  if (!up) {
    const out = await bg.stop();
    throw new Error(`the listener on :${port} in ${ns} did not start: ${out.trim() || 'no output'}`);
  }
  return bg;
}

/** What a TCP connection brought: the text read, or why there was none (socat's own words). */
interface TcpAnswer {
  text?: string;
  why?: string;
}

/**
 * What a TCP connection from namespace `ns` to dst:port reads before the other end closes,
 * or why it read nothing (refused, timed out, connected but silent). `bind` sets the client's
 * source address.
 */
async function tcpAsk(lab: ClusterExec, ns: string, dst: string, port: number, bind?: string, timeoutS = 5): Promise<TcpAnswer> {
  const target = `TCP:${dst}:${port},connect-timeout=${timeoutS}${bind ? `,bind=${bind}` : ''}`;
  const r = await lab.runner.run(lab.backend.inNs(ns, ['socat', '-T', String(timeoutS), '-u', target, 'STDOUT']), {
    allowFail: true,
    timeoutMs: (timeoutS * 2 + 10) * 1000,
  });
  const text = r.stdout.trim();
  if (r.code === 0 && text) return { text };
  if (r.code === 0) return { why: `connected, nothing read within ${timeoutS} s` };
  // socat's error line ends with the system's reason: "E connect(5, AF=2 …): Connection timed out".
  const said = r.stderr.trim().split('\n').at(-1)?.trim() ?? '';
  return { why: /: ([^:]+)$/.exec(said)?.[1] ?? (said || `exit ${r.code}`) };
}

/** How up to three TCP attempts went: what the accepted one read, how many it took, why the last failed one failed. */
export interface TcpOutcome {
  text?: string;
  tries: number;
  why?: string;
}

/**
 * TCP attempts until one reads what `accept` wants, at most `tries`. A connection is one
 * exchange: under software emulation with a cluster running, a single attempt was seen to go
 * unanswered where the next one succeeded, so a probe gets the patience of a ping's three.
 */
export async function tcpAskUntil(
  lab: ClusterExec,
  ns: string,
  dst: string,
  port: number,
  accept: (text: string) => boolean,
  o: { bind?: string; tries?: number } = {},
): Promise<TcpOutcome> {
  const tries = o.tries ?? 3;
  let why: string | undefined;
  for (let i = 1; i <= tries; i++) {
    const r = await tcpAsk(lab, ns, dst, port, o.bind);
    if (r.text !== undefined && accept(r.text)) return { text: r.text, tries: i, ...(why && { why }) };
    why = r.text === undefined ? r.why : `answered "${r.text.split('\n')[0]}"`;
  }
  return { tries, ...(why && { why }) };
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
