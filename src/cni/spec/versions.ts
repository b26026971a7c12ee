// CNI spec versions this plugin speaks, and which verbs each version allows.
// 0.1.0/0.2.0 (the pre-"interfaces" result shape) are not supported: every runtime
// still in use sends 0.3.1 or newer, and the issue asks for 0.3.1 … 1.1.0.

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

type Triple = [number, number, number];

function parseVersion(v: string): Triple | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Semver order of two x.y.z strings; an unparsable version sorts before everything. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a) ?? [-1, 0, 0];
  const pb = parseVersion(b) ?? [-1, 0, 0];
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** First spec version that defines each verb (CHECK came with 0.4.0, GC and STATUS with 1.1.0). */
const VERB_SINCE: Record<string, string> = {
  ADD: '0.1.0',
  DEL: '0.1.0',
  VERSION: '0.1.0',
  CHECK: '0.4.0',
  GC: '1.1.0',
  STATUS: '1.1.0',
};

export function versionAllows(version: string, command: string): boolean {
  const since = VERB_SINCE[command];
  return since !== undefined && compareVersions(version, since) >= 0;
}

/** Highest version both sides support (for talking to an older delegated plugin), if any. */
export function highestCommonVersion(ours: readonly string[], theirs: readonly string[]): string | undefined {
  return ours
    .filter((v) => theirs.includes(v))
    .sort(compareVersions)
    .at(-1);
}
