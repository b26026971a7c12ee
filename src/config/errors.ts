// Every problem in cluster.yaml is reported with the key it concerns, the offending
// value, what is wrong and how to fix it; all problems at once, so one edit fixes them all.

export interface ConfigIssue {
  /** Dotted key path, e.g. `nodes[2].ip` or `network.podCidr`. */
  path: string;
  /** The offending value as the user wrote it (omitted for missing keys). */
  value?: unknown;
  /** What is wrong. */
  problem: string;
  /** How to fix it. */
  fix: string;
  /** 1-based line/column in the file, when known. */
  line?: number;
  column?: number;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(formatIssues(file, issues));
    this.name = 'ConfigError';
  }
}

function formatIssues(file: string, issues: ConfigIssue[]): string {
  const lines = issues.map((i) => {
    const where = i.line ? `${file}:${i.line}:${i.column ?? 1}` : file;
    const value = i.value === undefined ? '' : ` = ${JSON.stringify(i.value)}`;
    return `${where}: ${i.path}${value}: ${i.problem}\n    fix: ${i.fix}`;
  });
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  return `${file}: ${count}; nothing was written\n${lines.join('\n')}`;
}

/** `['nodes', 2, 'ip']` → `nodes[2].ip` */
export function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${key}` : key), '');
}
