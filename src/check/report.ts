// What `check` returns and prints: one typed result per check, each failure a sentence that
// points at its cause, and the matrices (pure formatting).

/** Every check, in the order `check` runs them. */
export const CHECK_NAMES = [
  'tunnels',
  'pings',
  'capture',
  'sources',
  'inbound',
  'node-traffic',
  'masquerade',
  'mtu',
  'kernel-esp',
  'units',
  'rekey',
  'fail-closed',
  'reprovision',
  'reboot',
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

export interface CheckResult {
  name: CheckName;
  ok: boolean;
  /** One line: what was measured. */
  summary: string;
  /** A matrix or other detail lines. */
  lines?: string[];
  /** Each failure, naming where and why. */
  problems: string[];
  /** Why the check does not apply to this cluster (then it is neither passed nor failed). */
  skipped?: string;
  /** Measured numbers (seconds, bytes, counts) for tools and tests. */
  values?: Record<string, number>;
}

export interface CheckReport {
  ok: boolean;
  /** The cluster checked ("lab kil", "cluster kube-ipsec"). */
  target: string;
  results: CheckResult[];
}

/** Passed when something was checked and everything that applied passed. */
export function report(target: string, results: CheckResult[]): CheckReport {
  const applied = results.filter((r) => !r.skipped);
  return { ok: applied.length > 0 && applied.every((r) => r.ok), target, results };
}

/** A table: first column the row labels, then one column per `cols`, padded to fit. */
export function formatMatrix(corner: string, rows: string[], cols: string[], cell: (row: string, col: string) => string): string[] {
  const body = rows.map((r) => [r, ...cols.map((c) => cell(r, c))]);
  const all = [[corner, ...cols], ...body];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((line) => line[i]!.length)));
  return all.map((line) =>
    line
      .map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatResult(res: CheckResult): string {
  const out = [`${res.skipped ? 'N/A ' : res.ok ? 'PASS' : 'FAIL'}  ${res.name.padEnd(11)} ${res.summary}`];
  for (const l of res.lines ?? []) out.push(`      ${l}`);
  for (const p of res.problems) out.push(`   ✗  ${p}`);
  return out.join('\n') + '\n';
}

export function formatVerdict(r: CheckReport): string {
  const applied = r.results.filter((x) => !x.skipped);
  const failed = applied.filter((x) => !x.ok).map((x) => x.name);
  const skipped = r.results.filter((x) => x.skipped).map((x) => x.name);
  const na = skipped.length ? `; ${skipped.length} not applicable (${skipped.join(', ')})` : '';
  return (
    (r.ok
      ? `${r.target}: all ${applied.length} checks passed${na}`
      : `${r.target}: ${failed.length} of ${applied.length} checks failed (${failed.join(', ')})${na}`) + '\n'
  );
}

export function formatReport(r: CheckReport): string {
  return r.results.map(formatResult).join('') + formatVerdict(r);
}
