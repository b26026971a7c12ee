// The command as users run it: bin/kube-ipsec, the CLI built into dist/cli/ as JavaScript.
// In a copy of the package (its own dist/, the repository's node_modules): a first start
// builds it; later starts use the build while its sources are unchanged and rebuild it when
// one changed; files read at run time (templates/, provision/) are found from the package,
// not from where the bundle was built; the built render writes exactly what the TypeScript
// does. The benchmarks are no part of it: `npm run bench` runs them from the package.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cluster.ts';

const copy = mkdtempSync(join(tmpdir(), 'kube-ipsec-cli-build-'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

for (const entry of ['package.json', 'bin', 'scripts/build-cli.js', 'scripts/bench.ts', 'src', 'templates', 'provision', 'bench', 'cluster.yaml']) {
  mkdirSync(join(copy, entry, '..'), { recursive: true });
  cpSync(join(repoRoot, entry), join(copy, entry), { recursive: true });
}
symlinkSync(join(repoRoot, 'node_modules'), join(copy, 'node_modules'));

const kubeIpsec = (...args: string[]) =>
  spawnSync(process.execPath, [join(copy, 'bin', 'kube-ipsec'), ...args], { cwd: copy, encoding: 'utf8', timeout: 60_000 });
const inputs = join(copy, 'dist', 'cli', 'inputs.json');

describe('bin/kube-ipsec, the built CLI', () => {
  it('builds itself on the first start, then renders exactly what the TypeScript renders', () => {
    expect(existsSync(inputs)).toBe(false);
    const built = kubeIpsec('render', '--config', 'cluster.yaml', '--out', 'out-built', '--state', 'state');
    expect(built.status, built.stderr).toBe(0);
    expect(built.stdout).toMatch(/out-built\/: \d+ written/);
    const recorded = JSON.parse(readFileSync(inputs, 'utf8')) as { inputs: [string, number][] };
    expect(recorded.inputs.map(([f]) => f)).toContain('src/render/pipeline.ts');
    // Sources by their mtime; npm packages (bundled) by npm's record of what it installed.
    expect(recorded.inputs.filter(([f]) => !f.startsWith('src/')).map(([f]) => f)).toEqual(['node_modules/.package-lock.json']);
    // The product's import graph holds neither the tests nor the benchmarks.
    expect(recorded.inputs.filter(([f]) => /^(test|bench)\//.test(f))).toEqual([]);

    const viaTsx = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(copy, 'src', 'cli.ts'), 'render', '--config', 'cluster.yaml', '--out', 'out-tsx', '--state', 'state'],
      { cwd: copy, encoding: 'utf8', timeout: 60_000 },
    );
    expect(viaTsx.status, viaTsx.stderr).toBe(0);
    const tree = (dir: string): Record<string, string> =>
      Object.fromEntries(
        (readdirSync(join(copy, dir), { recursive: true, encoding: 'utf8' }) as string[])
          .filter((f) => statSync(join(copy, dir, f)).isFile())
          .map((f) => [f, readFileSync(join(copy, dir, f), 'utf8')]),
      );
    const a = tree('out-built');
    expect(Object.keys(a).length).toBeGreaterThan(100);
    expect(tree('out-tsx')).toEqual(a);
  }, 120_000);

  it('starts from the build while its sources are unchanged, and rebuilds when one changed', () => {
    const before = statSync(inputs).mtimeMs;
    expect(kubeIpsec('render', '--help').status).toBe(0);
    expect(statSync(inputs).mtimeMs).toBe(before);

    writeFileSync(
      join(copy, 'src', 'commands.ts'),
      readFileSync(join(copy, 'src', 'commands.ts'), 'utf8').replace('usage: kube-ipsec <command>', 'usage (edited): kube-ipsec <command>'),
    );
    const later = Date.now() / 1000 + 2; // an mtime that differs even on a coarse clock
    utimesSync(join(copy, 'src', 'commands.ts'), later, later);
    const edited = kubeIpsec();
    expect(edited.stderr).toMatch(/^usage \(edited\): kube-ipsec <command>/);
    expect(statSync(inputs).mtimeMs).toBeGreaterThan(before);
  }, 60_000);

  it('reads templates from the package at run time, not from where it was built', () => {
    appendFileSync(join(copy, 'templates', 'etc', 'ipsec.conf.hbs'), '# edited in the package copy\n');
    const r = kubeIpsec('render', '--config', 'cluster.yaml', '--out', 'out-built', '--state', 'state', '--node', 'minion1');
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(copy, 'out-built', 'minion1', 'etc', 'ipsec.conf'), 'utf8')).toMatch(/# edited in the package copy\n$/);
  }, 60_000);

  it('has no bench subcommand; npm run bench runs the suites, TypeScript, from the package', () => {
    const notACommand = kubeIpsec('bench');
    expect(notACommand.status).toBe(2);
    expect(notACommand.stderr).not.toMatch(/^ +bench /m);
    const helloBench = [
      'export async function run(argv: string[]): Promise<number> {',
      '  const n: number = 41;',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript source written as text.
      "  console.log(`hello from bench ${n + 1} ${argv.join(' ')}`);",
      '  return 0;',
      '}',
      '',
    ].join('\n');
    writeFileSync(join(copy, 'bench', 'hello.ts'), helloBench);
    const bench = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(copy, 'scripts', 'bench.ts'), ...args], { cwd: copy, encoding: 'utf8', timeout: 60_000 });
    const r = bench('hello', '--quick');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/== bench hello ==\nhello from bench 42 --quick/);
    const unknown = bench('nosuch');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/available: cni, hello, lab, render, ship, vagrant, vm/);
  }, 60_000);
});
