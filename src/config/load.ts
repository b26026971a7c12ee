// cluster.yaml → ClusterConfig: parse (YAML, keeping positions), check the structure
// against the schema, fill defaults, then check the rules that span keys. Any problem
// throws one ConfigError listing all of them with file:line and a fix.
import type { ErrorObject, ValidateFunction } from 'ajv';
import { readFileSync } from 'node:fs';
import { applyBuiltBinaries } from '../binaries/manifest.ts';
import { isAlias, isMap, isPair, isScalar, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import { parseCidr } from '../plan/ipv4.ts';
import { applyDefaults, type ClusterConfig } from './defaults.ts';
import { ConfigError, formatPath, type ConfigIssue } from './errors.ts';
import { formatProblem } from './formats.ts';
import type { RawClusterConfig } from './schema.ts';
import { validate } from './structure.generated.ts';
import { validateCluster } from './validate.ts';

// The schema's validator, precompiled by ajv (`npm run schema`): compiling it at every
// start of the CLI cost more than everything else the render does for a warm cluster.
const validateStructure = validate as ValidateFunction<RawClusterConfig>;

/** cluster.yaml as provisioning uses it: with the checksums of what npm run binaries built in binaries.dir. */
export function loadClusterFile(file: string): ClusterConfig {
  return applyBuiltBinaries(readClusterFile(file), file);
}

/** cluster.yaml as written, without what binaries.dir holds (npm run binaries itself). */
export function readClusterFile(file: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      { path: '(file)', problem: code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`, fix: 'pass --config <path to cluster.yaml>' },
    ]);
  }
  return parseCluster(text, file);
}

/** Parses cluster.yaml text; `file` is only used in messages. */
export function parseCluster(text: string, file = 'cluster.yaml'): ClusterConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: '(yaml)', problem: e.message.split('\n')[0]!, fix: 'fix the YAML syntax at this position', line: pos.line, column: pos.col };
      }),
    );
  }
  const data: unknown = toData(doc, lineCounter, file) ?? {};
  const locate = (path: (string | number)[], key?: string) => position(doc, lineCounter, path, key);

  if (!validateStructure(data)) {
    throw new ConfigError(
      file,
      dedupe(validateStructure.errors ?? []).map((e) => structuralIssue(e, data, locate)),
    );
  }
  const config = applyDefaults(data as RawClusterConfig);
  const issues = validateCluster(config).map((issue) => ({ ...issue, ...locate(issue.pathParts) }));
  if (issues.length)
    throw new ConfigError(
      file,
      issues.map(({ pathParts: _, ...rest }) => rest),
    );
  return config;
}

/**
 * Aliases expanded at most this often in all: a cluster.yaml needs a handful; a "billion
 * laughs" document (aliases of aliases of lists of aliases) would expand to gigabytes.
 */
const MAX_ALIAS_COUNT = 100;

/**
 * The document as plain data. yaml resolves aliases here, and says with a ReferenceError when
 * one points nowhere or when they expand too far (an alias bomb): a ConfigError at that alias.
 */
function toData(doc: Document, lineCounter: LineCounter, file: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    const bomb = /excessive alias count/i.test(err.message);
    let at: number | undefined;
    visit(doc, {
      Alias: (_, node) => {
        if (!isAlias(node) || (!bomb && node.resolve(doc) !== undefined)) return undefined;
        at = node.range?.[0];
        return visit.BREAK;
      },
    });
    const pos = at === undefined ? {} : (({ line, col }) => ({ line, column: col }))(lineCounter.linePos(at));
    throw new ConfigError(file, [
      bomb
        ? {
            path: '(yaml)',
            problem: `its aliases expand to more than ${MAX_ALIAS_COUNT} copies (a "billion laughs" document?)`,
            fix: 'write the values out instead of nesting aliases of aliases',
            ...pos,
          }
        : {
            path: '(yaml)',
            problem: err.message.replace(/^./, (c) => c.toLowerCase()),
            fix: 'set the anchor (&name) before the alias (*name) that uses it',
            ...pos,
          },
    ]);
  }
}

function position(doc: Document, lc: LineCounter, path: (string | number)[], key?: string): { line?: number; column?: number } {
  // Walk up until a node with a position exists (a missing key points at its parent).
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : (doc.getIn(path.slice(0, depth), true) as Node | undefined);
    if (!node) continue;
    let offset = node.range?.[0];
    if (key !== undefined && depth === path.length && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
      if (pair && isScalar(pair.key)) offset = pair.key.range?.[0];
    }
    if (offset === undefined) continue;
    const { line, col } = lc.linePos(offset);
    return { line, column: col };
  }
  return {};
}

/**
 * ajv reports `anyOf`-style cascades and repeated formats; keep one error per path+keyword.
 * A value with a format that fails its pattern too (the pattern is the editors' view of the
 * format) is reported once, by the format, which says why.
 */
function dedupe(errors: ErrorObject[]): ErrorObject[] {
  const seen = new Set<string>();
  const formatFailed = new Set(errors.filter((e) => e.keyword === 'format').map((e) => e.instancePath));
  return errors.filter((e) => {
    if (e.keyword === 'pattern' && formatFailed.has(e.instancePath)) return false;
    const id = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function structuralIssue(e: ErrorObject, data: unknown, locate: (path: (string | number)[], key?: string) => { line?: number; column?: number }): ConfigIssue {
  const parts = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => (/^[0-9]+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
  const value = parts.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], data);
  const description = (e.parentSchema as { description?: string } | undefined)?.description;
  const hint = description ? ` (${description})` : '';
  const base = { ...locate(parts), path: formatPath(parts) || '(top level)' };
  switch (e.keyword) {
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return { ...base, path: formatPath([...parts, missing]), problem: 'is required', fix: `add \`${missing}:\` here` };
    }
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
      const guess = closest(extra, known);
      return {
        ...base,
        ...locate(parts, extra),
        path: formatPath([...parts, extra]),
        problem: 'is not a known key',
        fix: guess ? `did you mean \`${guess}\`? known keys here: ${known.join(', ')}` : `remove it; known keys here: ${known.join(', ')}`,
      };
    }
    case 'format': {
      const format = (e.params as { format: string }).format;
      const explained = typeof value === 'string' ? formatProblem(format, value) : undefined;
      if (explained) return { ...base, value, problem: explained.problem, fix: explained.fix };
      const reason =
        format === 'ipv4-cidr' && typeof value === 'string' && !parseCidr(value).ok
          ? (parseCidr(value) as { reason: string }).reason
          : `is not a valid ${format}`;
      const example = format === 'ipv4' ? 'e.g. 192.168.10.21' : 'e.g. 10.240.0.0/16';
      return {
        ...base,
        value,
        problem: reason,
        fix: `write a ${format === 'ipv4' ? 'dotted-quad IPv4 address' : 'network address with prefix length'}, ${example}${hint}`,
      };
    }
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
      return { ...base, value, problem: 'is not one of the allowed values', fix: `use one of: ${allowed.join(', ')}${hint}` };
    }
    case 'type':
      return {
        ...base,
        value,
        problem: `must be ${withArticle((e.params as { type: string }).type)}`,
        fix: `write ${withArticle((e.params as { type: string }).type)} here${hint}`,
      };
    case 'pattern':
      return {
        ...base,
        value,
        problem: (typeof value === 'string' && oddCharacter(value)) || 'has the wrong form',
        fix: `${description ?? `match ${(e.params as { pattern: string }).pattern}`}`,
      };
    default:
      return { ...base, value, problem: e.message ?? 'is invalid', fix: description ?? 'see schema/cluster.schema.json' };
  }
}

/**
 * What makes a string dangerous where it is written, when that is why it does not match: a
 * control character (a tab or line break starts a new row in a TSV file, a new line in a
 * unit or a script), or a leading dash (an option, on a command line).
 */
function oddCharacter(value: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for.
  const m = /[\x00-\x1f\x7f\u0085\u2028\u2029]/u.exec(value);
  if (m) {
    const code = `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    const name = { '\t': 'a tab', '\n': 'a line break', '\r': 'a carriage return' }[m[0]] ?? 'a control character';
    return `contains ${name} (${code}) at position ${m.index + 1}, which would change the meaning of the file or command line it is written to`;
  }
  if (value.startsWith('-')) return 'starts with "-", which a command line would read as an option';
  return undefined;
}

function withArticle(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** The known key nearest to a misspelt one (case-insensitive edit distance ≤ 3). */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
