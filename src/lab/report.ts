// What `check` returns and prints: one typed result per check, each failure a sentence that
// points at its cause, and the matrices (pure formatting).

export type CheckName = 'tunnels' | 'pings' | 'capture' | 'masquerade' | 'fail-closed' | 'mtu' | VmCheckName;
/** Checks only a VM lab has: what only a real node shows (kernel ESP, systemd, a reboot, re-provisioning). */
export type VmCheckName = 'kernel-esp' | 'units' | 'reprovision' | 'reboot';
export const VM_CHECK_NAMES: readonly VmCheckName[] = ['kernel-esp', 'units', 'reprovision', 'reboot'];
/** Checks both backends run, in their order. */
export const NETWORK_CHECK_NAMES: readonly CheckName[] = ['tunnels', 'pings', 'capture', 'masquerade', 'mtu', 'fail-closed'];
export const CHECK_NAMES: readonly CheckName[] = [...NETWORK_CHECK_NAMES, ...VM_CHECK_NAMES];

export interface CheckResult {
  name: CheckName;
  ok: boolean;
  /** One line: what was measured. */
  summary: string;
  /** A matrix or other detail lines. */
  lines?: string[];
  /** Each failure, naming where and why. */
  problems: string[];
  /** Measured numbers (seconds, bytes, counts) for tools and tests. */
  values?: Record<string, number>;
}

export interface CheckReport {
  ok: boolean;
  lab: string;
  results: CheckResult[];
}

export function report(lab: string, results: CheckResult[]): CheckReport {
  return { ok: results.length > 0 && results.every((r) => r.ok), lab, results };
}

/** A table: first column the row labels, then one column per `cols`, padded to fit. */
export function formatMatrix(corner: string, rows: string[], cols: string[], cell: (row: string, col: string) => string): string[] {
  const body = rows.map((r) => [r, ...cols.map((c) => cell(r, c))]);
  const all = [[corner, ...cols], ...body];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((line) => line[i]!.length)));
  return all.map((line) => line.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ').trimEnd());
}

export function formatResult(res: CheckResult): string {
  const out = [`${res.ok ? 'PASS' : 'FAIL'}  ${res.name.padEnd(11)} ${res.summary}`];
  for (const l of res.lines ?? []) out.push(`      ${l}`);
  for (const p of res.problems) out.push(`   ✗  ${p}`);
  return out.join('\n') + '\n';
}

export function formatVerdict(r: CheckReport): string {
  const failed = r.results.filter((x) => !x.ok).map((x) => x.name);
  return (r.ok ? `lab ${r.lab}: all ${r.results.length} checks passed` : `lab ${r.lab}: ${failed.length} of ${r.results.length} checks failed (${failed.join(', ')})`) + '\n';
}

export function formatReport(r: CheckReport): string {
  return r.results.map(formatResult).join('') + formatVerdict(r);
}
