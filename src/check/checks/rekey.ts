// Rekey: SAs are replaced without losing a packet or letting one out in clear. Continuous
// flows run across every node pair — ping at 10/s and a TCP stream, pod to pod (a node without
// pods sends from its own address) — for as long as it takes every pair to rekey its CHILD_SA
// twice and its IKE_SA once (strongSwan schedules rekeys at lifetime − margin − a random share
// of the margin; the check reads when each SA is due and waits for the last). Meanwhile the
// underlay is captured and every node's SAs are polled: a rekey shows as a new inbound SPI
// (CHILD_SA) or new IKE SPIs. Afterwards: 0 lost pings, every line of every TCP stream
// arrived in order on its one connection, 0 clear-text pod packets, one SA pair per peer.
import { captureUnderlay, classifyCapture, clearTextProblems, type CaptureSummary } from '../capture.ts';
import { readNodeSas } from '../mesh.ts';
import type { CheckResult } from '../report.ts';
import type { Background, CheckNode, CheckTarget, CheckTopology, SaLifetimes } from '../target.ts';
import type { IkeSa } from '../vici.ts';
import { notSingle, settleMesh } from './tunnels.ts';
import { addressBook } from './traffic.ts';
import { pingSummary, sinkListener } from '../probe.ts';
import { timer } from '../../clock.ts';

/** Rekeys every pair must go through while the flows run. */
const CHILD_REKEYS = 2;
const IKE_REKEYS = 1;
/** Ping rate and TCP line rate of each flow (per second). */
const RATE = 10;
/** Longest run the check starts unless it is named (`--only rekey`): the labs' lifetimes fit in it, a production cluster's (hours) do not. */
const UNNAMED_BOUND_S = 600;
/** Time for the rekey exchanges themselves, and for the flows' last packets, on top of the schedule. */
const SLACK_S = 10;
const TCP_BASE_PORT = 8180;

/** The longest the flows may have to run, from any moment, to see the rekeys: two CHILD_SA lifetimes' rekey intervals, one IKE_SA's. */
export function worstCaseSeconds(l: SaLifetimes): number {
  return Math.max(CHILD_REKEYS * (l.child - l.margin), IKE_REKEYS * (l.ike - l.margin)) + SLACK_S;
}

/** Why the check does not start on its own: the lifetimes would keep it running too long. */
export function rekeyTooLong(l: SaLifetimes): string | undefined {
  const s = worstCaseSeconds(l);
  if (s <= UNNAMED_BOUND_S) return undefined;
  return `with ipsec.lifetime ${l.child} s and ikeLifetime ${l.ike} s (rekeyMargin ${l.margin} s), ${CHILD_REKEYS} CHILD_SA rekeys and ${IKE_REKEYS} IKE_SA rekey take up to ${Math.ceil(s / 60)} min: name the check (--only rekey) to wait for them, or shorten the lifetimes (the labs do: lab up --lifetimes short)`;
}

/**
 * How long to run, from the SAs as they are now: the second CHILD_SA rekey of a pair comes at
 * most one rekey interval after its first (due in `rekeyIn`), its IKE rekey when due.
 */
export function plannedSeconds(l: SaLifetimes, sas: IkeSa[][]): number {
  const interval = l.child - l.margin;
  let longest = 0;
  for (const node of sas) {
    for (const ike of node.filter((s) => s.state === 'ESTABLISHED')) {
      const child = Math.min(...ike.children.filter((c) => c.state === 'INSTALLED').map((c) => c.rekeyIn ?? interval));
      if (Number.isFinite(child)) longest = Math.max(longest, child + (CHILD_REKEYS - 1) * interval);
      longest = Math.max(longest, (ike.rekeyIn ?? l.ike - l.margin) + (IKE_REKEYS - 1) * (l.ike - l.margin));
    }
  }
  return Math.min(longest + SLACK_S, worstCaseSeconds(l));
}

export interface RekeyFlow {
  /** "minion1 ↔ minion2" */
  pair: string;
  a: string;
  b: string;
  /** Namespace the flow is sent from (a pod, or the node without pods), and its label. */
  ns: string;
  from: string;
  /** The destination pod's namespace and label. */
  dstNs: string;
  to: string;
  port: number;
}

/** One flow per node pair with a pod on at least one side: from the first's pod (or the node) to the other's pod. */
export function rekeyFlows(t: CheckTopology): RekeyFlow[] {
  const flows: RekeyFlow[] = [];
  t.nodes.forEach((x, i) => {
    for (const y of t.nodes.slice(i + 1)) {
      const [src, dst] = y.pods.length ? [x, y] : [y, x];
      if (!dst.pods.length) continue;
      const from: { ns: string; name: string } = src.pods[0] ?? src;
      flows.push({
        pair: `${x.name} ↔ ${y.name}`,
        a: x.name,
        b: y.name,
        ns: from.ns,
        from: from.name,
        dstNs: dst.pods[0]!.ns,
        to: dst.pods[0]!.name,
        port: TCP_BASE_PORT + flows.length,
      });
    }
  });
  return flows;
}

/** The SPIs seen per node pair while polling: each new inbound CHILD_SA SPI or IKE SPI pair is one SA. */
export class SpiLog {
  readonly child = new Map<string, Set<string>>();
  readonly ike = new Map<string, Set<string>>();

  record(t: CheckTopology, node: CheckNode, sas: IkeSa[]): void {
    for (const ike of sas.filter((s) => s.state === 'ESTABLISHED')) {
      const peer = t.nodes.find((n) => n.ip === ike.remoteHost);
      if (!peer) continue;
      const pair = pairKey(node.name, peer.name);
      add(this.ike, pair, ike.spis);
      for (const c of ike.children.filter((c) => c.state === 'INSTALLED')) add(this.child, pair, `${node.name}:${c.spiIn}`);
    }
  }

  /** Rekeys seen of a pair: SAs seen at one end, minus the first. */
  rekeys(a: string, b: string): { child: number; ike: number } {
    const pair = pairKey(a, b);
    const childAt = (end: string) => [...(this.child.get(pair) ?? [])].filter((s) => s.startsWith(`${end}:`)).length;
    return { child: Math.max(0, Math.min(childAt(a), childAt(b)) - 1), ike: Math.max(0, (this.ike.get(pair)?.size ?? 0) - 1) };
  }
}

const pairKey = (x: string, y: string) => (x < y ? `${x}|${y}` : `${y}|${x}`);
function add(m: Map<string, Set<string>>, k: string, v: string) {
  m.set(k, (m.get(k) ?? new Set()).add(v));
}

/** What a TCP stream of lines 0…n−1 delivered: in order and complete, or where it broke. */
export function streamVerdict(received: string, sent: number): { ok: boolean; lines: number; why?: string } {
  const lines = received.split('\n').filter((l) => l !== '');
  const firstWrong = lines.findIndex((l, i) => l !== String(i));
  if (firstWrong >= 0) return { ok: false, lines: lines.length, why: `line ${firstWrong} was '${lines[firstWrong]}'` };
  if (lines.length !== sent) return { ok: false, lines: lines.length, why: `${lines.length} of ${sent} lines arrived` };
  return { ok: true, lines: lines.length };
}

export interface FlowOutcome {
  flow: RekeyFlow;
  ping?: { sent: number; received: number };
  stream: { ok: boolean; lines: number; why?: string };
  /** The TCP client's own failure (connection refused, reset…). */
  clientError?: string;
}

export async function checkRekey(lab: CheckTarget): Promise<CheckResult> {
  const t = lab.topology;
  const flows = rekeyFlows(t);
  if (!flows.length)
    return { name: 'rekey', ok: false, summary: 'no pods to send to', problems: ['no node runs pods: there is no flow to keep running across rekeys'] };
  const ip = (ns: string) => lab.pods[ns]?.ip ?? '';
  const first = await Promise.all(t.nodes.map((n) => readNodeSas(lab, n.name)));
  const seconds = Math.ceil(
    plannedSeconds(
      t.lifetimes,
      first.map((s) => s.sas),
    ),
  );
  const count = seconds * RATE;
  const log = new SpiLog();
  for (const [i, n] of t.nodes.entries()) log.record(t, n, first[i]!.sas);

  const servers: Background[] = [];
  let outcomes: FlowOutcome[] = [];
  let lines: string[] = [];
  try {
    for (const f of flows) servers.push(await sinkListener(lab, f.dstNs, f.port));
    const capture = await captureUnderlay(lab, 'rekey');
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const now = await Promise.all(t.nodes.map((n) => readNodeSas(lab, n.name)));
        for (const [i, n] of t.nodes.entries()) log.record(t, n, now[i]!.sas);
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    const since = timer();
    try {
      const results = await Promise.all(
        flows.map(async (f) => {
          const ping = lab.runner.run(
            lab.backend.inNs(f.ns, ['ping', '-n', '-q', '-i', String(1 / RATE), '-c', String(count), '-w', String(seconds + 30), ip(f.dstNs)]),
            { allowFail: true, timeoutMs: (seconds + 60) * 1000 },
          );
          const script = `i=0; while [ $i -lt ${count} ]; do echo $i; i=$((i+1)); sleep ${1 / RATE}; done`;
          const tcp = lab.runner.run(lab.backend.inNs(f.ns, ['socat', '-u', `SYSTEM:${script}`, `TCP:${ip(f.dstNs)}:${f.port},connect-timeout=5`]), {
            allowFail: true,
            timeoutMs: (seconds * 2 + 60) * 1000,
          });
          const [p, c] = await Promise.all([ping, tcp]);
          return { f, ping: pingSummary(p.stdout), clientError: c.code === 0 ? undefined : (c.stderr.trim().split('\n').pop() ?? `exit ${c.code}`) };
        }),
      );
      outcomes = await Promise.all(
        results.map(async (r, i) => {
          const received = await servers[i]!.stop();
          return { flow: r.f, ...(r.ping && { ping: r.ping }), stream: streamVerdict(received, count), ...(r.clientError && { clientError: r.clientError }) };
        }),
      );
    } finally {
      polling = false;
      await poller;
      lines = await capture.stop();
    }
    const ran = since();
    const settled = await settleMesh(lab);
    return rekeyResult({
      seconds: ran,
      flows: outcomes,
      log,
      capture: classifyCapture(lines, t.podCidr),
      book: addressBook(lab),
      notSingle: notSingle(settled),
      topology: t,
    });
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => '')));
  }
}

export interface RekeyMeasure {
  seconds: number;
  flows: FlowOutcome[];
  log: SpiLog;
  capture: CaptureSummary;
  book: Map<string, string>;
  notSingle: string[];
  topology: CheckTopology;
}

export function rekeyResult(m: RekeyMeasure): CheckResult {
  const problems: string[] = [];
  const lines: string[] = [];
  const t = m.topology;
  let lost = 0;
  t.nodes.forEach((x, i) => {
    for (const y of t.nodes.slice(i + 1)) {
      const r = m.log.rekeys(x.name, y.name);
      const f = m.flows.find((o) => o.flow.a === x.name && o.flow.b === y.name);
      const pair = `${x.name} ↔ ${y.name}`;
      const ping = f?.ping ? `${f.ping.received}/${f.ping.sent} pings` : f ? 'ping gave no summary' : 'no flow';
      const tcp = f
        ? f.stream.ok && !f.clientError
          ? `TCP stream unbroken (${f.stream.lines} lines)`
          : `TCP stream broken (${f.clientError ?? f.stream.why})`
        : '';
      lines.push(
        `${pair}: ${r.child} CHILD_SA rekeys, ${r.ike} IKE_SA rekeys; ${f ? `${f.flow.from} → ${f.flow.to}: ${ping}, ${tcp}` : 'no pods on either side'}`,
      );
      if (r.child < CHILD_REKEYS || r.ike < IKE_REKEYS) {
        problems.push(
          `${pair}: ${r.child} CHILD_SA and ${r.ike} IKE_SA rekeys in ${m.seconds.toFixed(0)} s, ${CHILD_REKEYS} and ${IKE_REKEYS} expected from its lifetimes (${t.lifetimes.child} s / ${t.lifetimes.ike} s, margin ${t.lifetimes.margin} s): strongSwan did not rekey when due`,
        );
      }
      if (!f) continue;
      if (!f.ping) problems.push(`${pair}: ping ${f.flow.from} → ${f.flow.to} printed no summary (it could not run)`);
      else if (f.ping.received < f.ping.sent) {
        lost += f.ping.sent - f.ping.received;
        problems.push(`${pair}: ${f.ping.sent - f.ping.received} of ${f.ping.sent} pings ${f.flow.from} → ${f.flow.to} lost across the rekeys`);
      }
      if (f.clientError || !f.stream.ok) problems.push(`${pair}: the TCP stream ${f.flow.from} → ${f.flow.to} broke: ${f.clientError ?? f.stream.why}`);
    }
  });
  problems.push(...clearTextProblems(m.capture.clearPod, m.book));
  for (const p of m.notSingle) problems.push(`after the rekeys: ${p}`);
  return {
    name: 'rekey',
    ok: problems.length === 0,
    summary: `${m.flows.length} flows for ${m.seconds.toFixed(0)} s across every pair's rekeys: ${lost} pings lost, ${m.flows.filter((f) => !f.stream.ok || f.clientError).length} TCP streams broken, ${m.capture.clearPod.length} clear-text pod packets, ${m.notSingle.length ? 'not ' : ''}one SA pair per peer afterwards`,
    lines,
    problems,
    values: { seconds: m.seconds, lost, clearPod: m.capture.clearPod.length },
  };
}
