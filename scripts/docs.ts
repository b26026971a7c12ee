// `npm run docs`: regenerates what README.md and docs/ show from the code, in place.
//   <!-- generated: NAME --> … <!-- end generated: NAME -->   a region written from the code:
//       cluster-yaml   every key of cluster.yaml (src/config/schema.ts: type, default, example, description)
//       cli            each subcommand's --help (src/commands.ts)
//       npm-scripts    package.json's scripts
//       conflist       minion1's CNI network configuration, rendered from the default cluster.yaml
//       versions       the pinned releases and images (src/config/pins.ts)
//   <!-- output: COMMAND --> followed by a fenced block: what COMMAND prints, run in a scratch
//       directory holding a copy of cluster.yaml and docs/examples/ (fresh state, so a render
//       issues every credential). COMMAND is `npm run <subcommand> [-- args]`.
// `npm run docs -- --check` changes nothing and exits 1 naming each stale file; the unit test
// test/unit/docs.test.ts does the same. Durations differ from run to run: they are compared
// as <duration> (normalizeOutput).
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS, usage } from '../src/commands.ts';
import { applyDefaults } from '../src/config/defaults.ts';
import { PINNED } from '../src/config/pins.ts';
import { clusterSchema } from '../src/config/schema.ts';
import { PATHS } from '../src/plan/paths.ts';
import { runRender } from '../src/render/pipeline.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** README.md and every page under docs/ (ADRs included), as paths relative to the repository. */
export function docFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  return ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md', ...walk('docs')].filter((f) => existsSync(join(ROOT, f)));
}

/** Durations (`326 ms`, `1.5 s`) vary between runs; everything else must match exactly. */
export function normalizeOutput(text: string): string {
  return text.replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, '<duration>');
}

// ---- captured output of a subcommand, in process -------------------------------------------

/** Runs `fn` with everything it prints (console, stdout, stderr) captured, in order. */
async function captured(fn: () => Promise<unknown>): Promise<string> {
  const chunks: string[] = [];
  const saved = { log: console.log, error: console.error, warn: console.warn, out: process.stdout.write, err: process.stderr.write };
  const line = (...args: unknown[]) => {
    chunks.push(`${args.map(String).join(' ')}\n`);
  };
  console.log = console.error = console.warn = line;
  const write = ((s: string | Uint8Array) => {
    chunks.push(typeof s === 'string' ? s : Buffer.from(s).toString());
    return true;
  }) as typeof process.stdout.write;
  process.stdout.write = process.stderr.write = write;
  try {
    await fn();
  } finally {
    Object.assign(console, { log: saved.log, error: saved.error, warn: saved.warn });
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
  }
  return chunks.join('');
}

async function helpOf(command: string): Promise<string> {
  const main = await COMMANDS[command]!.load();
  return (await captured(() => main(['--help']))).trimEnd();
}

/** `npm run render -- --node minion2` → ['render', ['--node', 'minion2']]. */
function parseCommand(command: string): [string, string[]] {
  const m = /^npm run ([a-z]+)(?: -- (.*))?$/.exec(command.trim());
  if (!m || !COMMANDS[m[1]!]) throw new Error(`output marker: cannot run "${command}" (only npm run <${Object.keys(COMMANDS).join('|')}> [-- args])`);
  return [m[1]!, m[2] ? m[2].split(/\s+/) : []];
}

/** What the last of `commands` prints, run one after the other in a scratch copy of cluster.yaml and docs/examples/. */
async function outputOf(commands: string[]): Promise<string> {
  const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-docs-'));
  const cwd = process.cwd();
  try {
    cpSync(join(ROOT, 'cluster.yaml'), join(scratch, 'cluster.yaml'));
    if (existsSync(join(ROOT, 'docs', 'examples'))) cpSync(join(ROOT, 'docs', 'examples'), join(scratch, 'docs', 'examples'), { recursive: true });
    process.chdir(scratch);
    let text = '';
    for (const command of commands) {
      const [name, args] = parseCommand(command);
      const main = await COMMANDS[name]!.load();
      text = await captured(() => main(args));
    }
    // Paths as the user typed them, from the repository root.
    return text.replaceAll(`${scratch}/`, '').trimEnd();
  } finally {
    process.chdir(cwd);
    rmSync(scratch, { recursive: true, force: true });
  }
}

// ---- generated regions ---------------------------------------------------------------------

async function cliRegion(): Promise<string> {
  const parts = ['Every subcommand, as `kube-ipsec <command>` (the `bin` of the package) or `npm run <command> --`:', '', '```text', usage().trimEnd(), '```'];
  for (const name of Object.keys(COMMANDS)) parts.push('', `## ${name}`, '', `\`npm run ${name} -- --help\`:`, '', '```text', await helpOf(name), '```');
  return parts.join('\n');
}

function npmScriptsRegion(): string {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const rows = Object.entries(scripts).map(([name, line]) => `| \`npm run ${name}\` | \`${line.replace(/\|/g, '\\|')}\` |`);
  return ['| script | runs |', '|---|---|', ...rows].join('\n');
}

type Schema = {
  type?: string;
  description?: string;
  enum?: readonly string[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  examples?: readonly unknown[];
  required?: readonly string[];
  properties?: Record<string, Schema>;
  items?: Schema;
};

/** The defaults as cluster.yaml gets them: a cluster of one master, every other key left out. */
function defaultsConfig(): Record<string, unknown> {
  return applyDefaults({ nodes: [{ name: 'node1', ip: '192.168.10.21' }] }) as unknown as Record<string, unknown>;
}

function valueAt(root: unknown, path: string[]): unknown {
  let v = root;
  for (const p of path) {
    if (v === undefined || v === null) return undefined;
    v = p === '[]' ? (v as unknown[])[0] : (v as Record<string, unknown>)[p];
  }
  return v;
}

function shown(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `\`${text.length > 72 ? `${text.slice(0, 40)}…${text.slice(-8)}` : text}\``;
}

function typeOf(s: Schema): string {
  if (s.enum) return s.enum.map((e) => `\`${e}\``).join(' \\| ');
  if (s.type === 'array') return 'list';
  if (s.format) return `${s.type} (${s.format})`;
  if (s.type === 'integer' && (s.minimum !== undefined || s.maximum !== undefined)) return `integer ${s.minimum ?? ''}…${s.maximum ?? ''}`;
  if (s.pattern && s.pattern.length <= 24) return `${s.type} \`${s.pattern}\``;
  return s.type ?? '';
}

function clusterYamlRegion(): string {
  const defaults = defaultsConfig();
  const rows: string[] = [];
  const walk = (s: Schema, path: string[], required: boolean) => {
    const key = path.join('.').replace(/\.\[\]/g, '[]');
    const leaf = s.type !== 'object' && s.type !== 'array';
    const stated = /Default: ([^.]+(?:\.[a-z][^.]*)?)\./.exec(s.description ?? '')?.[1];
    const value = path[0] === 'nodes' ? undefined : valueAt(defaults, path);
    const def = leaf && value !== undefined ? shown(value) : required ? 'required' : stated ? stated : '—';
    const example = s.examples?.length ? shown(s.examples[0]) : '';
    const description = (s.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
    rows.push(`| \`${key}\` | ${typeOf(s)} | ${def} | ${example} | ${description} |`);
    if (s.type === 'object') for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, [...path, k], (s.required ?? []).includes(k));
    if (s.type === 'array' && s.items) walk(s.items, [...path, '[]'], false);
  };
  for (const [k, v] of Object.entries((clusterSchema as Schema).properties!)) walk(v, [k], ((clusterSchema as Schema).required ?? []).includes(k));
  return ['| key | type | default | example | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

/**
 * Renders the repository's cluster.yaml, with `edit` applied to its text, into a temporary
 * directory; returns out/ and a function removing everything.
 */
export async function renderedTree(edit: (yaml: string) => string = (y) => y): Promise<{ out: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-docs-tree-'));
  const configFile = join(dir, 'cluster.yaml');
  writeFileSync(configFile, edit(readFileSync(join(ROOT, 'cluster.yaml'), 'utf8')));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    await runRender({ configFile, outDir: join(dir, 'out'), stateDir: join(dir, 'state') });
  } catch (err) {
    remove();
    throw err;
  }
  return { out: join(dir, 'out'), remove };
}

async function conflistRegion(): Promise<string> {
  const tree = await renderedTree();
  try {
    const text = readFileSync(join(tree.out, 'minion1', PATHS.cniConflist), 'utf8');
    return [`\`${PATHS.cniConflist}\` on minion1, as \`npm run render\` writes it for the default cluster.yaml:`, '', '```json', text.trimEnd(), '```'].join(
      '\n',
    );
  } finally {
    tree.remove();
  }
}

/** What a default cluster runs, from the pins (one line of the README). */
function versionsRegion(): string {
  const runc = /\/v?([0-9][^/]*)\/runc/.exec(PINNED.containerd.runc.url)?.[1];
  const images = Object.values(PINNED.images).map((i) => `\`${i.image.split('/').pop()}\``);
  return [
    `- **Kubernetes ${PINNED.kubernetes.version}** (pinned with checksums in \`src/config/pins.ts\`), etcd ${PINNED.etcd.version},`,
    `  docker through cri-dockerd ${PINNED.criDockerd.version} or containerd ${PINNED.containerd.version}${runc ? ` with runc ${runc}` : ''}; images ${images.join(', ')}.`,
  ].join('\n');
}

const REGIONS: Record<string, () => string | Promise<string>> = {
  versions: versionsRegion,
  'cluster-yaml': clusterYamlRegion,
  cli: cliRegion,
  'npm-scripts': npmScriptsRegion,
  conflist: conflistRegion,
};

// ---- one file ------------------------------------------------------------------------------

const REGION = /(<!-- generated: ([a-z-]+) -->\n)[\s\S]*?(<!-- end generated: \2 -->)/g;
const OUTPUT = /(<!-- output: (.+?) -->\n```[a-z]*\n)[\s\S]*?(^```)/gm;

/** The file's text with every generated region and output block written anew. */
export async function refreshed(text: string): Promise<string> {
  let out = '';
  let last = 0;
  // Made one after the other: an output block changes the working directory while it runs.
  const edits: { start: number; end: number; body: () => Promise<string> }[] = [];
  for (const m of text.matchAll(REGION)) {
    const make = REGIONS[m[2]!];
    if (!make) throw new Error(`unknown generated region "${m[2]}" (known: ${Object.keys(REGIONS).join(', ')})`);
    edits.push({ start: m.index + m[1]!.length, end: m.index + m[0].length - m[3]!.length, body: async () => `${await make()}\n` });
  }
  for (const m of text.matchAll(OUTPUT)) {
    edits.push({ start: m.index + m[1]!.length, end: m.index + m[0].length - m[3]!.length, body: async () => `${await outputOf(m[2]!.split(' && '))}\n` });
  }
  edits.sort((a, b) => a.start - b.start);
  for (const e of edits) {
    out += text.slice(last, e.start) + (await e.body());
    last = e.end;
  }
  return out + text.slice(last);
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes('--check');
  const stale: string[] = [];
  for (const file of docFiles()) {
    const path = join(ROOT, file);
    const text = readFileSync(path, 'utf8');
    const next = await refreshed(text);
    if (normalizeOutput(next) === normalizeOutput(text)) continue;
    stale.push(file);
    if (!check) writeFileSync(path, next);
  }
  if (check && stale.length) {
    console.error(`docs out of date: ${stale.join(', ')}\n  fix: npm run docs`);
    return 1;
  }
  console.log(stale.length ? `docs: rewrote ${stale.map((f) => relative('.', join(ROOT, f))).join(', ')}` : 'docs: up to date');
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
