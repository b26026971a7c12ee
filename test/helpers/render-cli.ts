// The render CLI in a scratch directory: one fresh directory per test under a root removed
// after the file, and everything the CLI prints (console and stdout) captured per test.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, vi } from 'vitest';

export interface CliSandbox {
  /** This test's own directory. */
  dir: string;
  /** What the CLI printed in this test (reassign [] to start over). */
  output: string[];
}

/** Registers the hooks; call once at the top of a test file. */
export function cliSandbox(name: string): CliSandbox {
  const root = mkdtempSync(join(tmpdir(), `kube-ipsec-${name}-`));
  const box: CliSandbox = { dir: root, output: [] };
  let seq = 0;
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    box.dir = join(root, String(seq++));
    mkdirSync(box.dir);
    box.output = [];
    const capture = (...args: unknown[]) => void box.output.push(args.join(' '));
    vi.spyOn(console, 'log').mockImplementation(capture);
    vi.spyOn(console, 'error').mockImplementation(capture);
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (box.output.push(String(chunk)), true));
  });
  afterEach(() => vi.restoreAllMocks());
  return box;
}
