// The docs as the code makes them (scripts/docs.ts): every generated region and output block
// is current, the README stays a front door (≤ 150 lines) from which every page is reachable,
// and every link between pages, anchors included, lands somewhere.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { docFiles, normalizeOutput, refreshed, ROOT } from '../../scripts/docs.ts';

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

describe('generated docs', () => {
  for (const file of docFiles()) {
    it(`${file} is what npm run docs makes of it`, async () => {
      const text = read(file);
      expect(normalizeOutput(await refreshed(text)), `${file} is stale: run npm run docs`).toBe(normalizeOutput(text));
    }, 120_000);
  }

  it('normalises durations only', () => {
    expect(normalizeOutput('out/: 137 written (4 nodes, 326 ms); took 1.5 s, 3 nodes')).toBe(
      'out/: 137 written (4 nodes, <duration>); took <duration>, 3 nodes',
    );
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function headings(text: string): Set<string> {
  const seen = new Set<string>();
  let inFence = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    const m = !inFence && /^#{1,6} (.+)$/.exec(line);
    if (m) seen.add(anchor(m[1]!));
  }
  return seen;
}

/** Relative markdown links of a page: [target file or '' for the page itself, anchor]. */
function links(file: string): { to: string; hash?: string; raw: string }[] {
  const out: { to: string; hash?: string; raw: string }[] = [];
  for (const m of read(file).matchAll(/\]\(([^)\s]+)\)/g)) {
    const raw = m[1]!;
    if (/^[a-z]+:/.test(raw)) continue;
    const [path, hash] = raw.split('#') as [string, string | undefined];
    out.push({ to: path ? normalize(join(dirname(file), path)) : file, ...(hash !== undefined && { hash }), raw });
  }
  return out;
}

describe('the docs as a whole', () => {
  it('keep the README a front door of at most 150 lines', () => {
    expect(read('README.md').split('\n').length).toBeLessThanOrEqual(150);
  });

  it('link only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const file of docFiles()) {
      for (const l of links(file)) {
        if (!existsSync(join(ROOT, l.to))) broken.push(`${file}: (${l.raw}): no file ${l.to}`);
        else if (l.hash !== undefined && l.to.endsWith('.md') && !headings(read(l.to)).has(l.hash))
          broken.push(`${file}: (${l.raw}): no heading #${l.hash} in ${l.to}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('reach every page from the README', () => {
    const reached = new Set(['README.md']);
    const queue = ['README.md'];
    while (queue.length) {
      for (const l of links(queue.shift()!)) {
        if (l.to.endsWith('.md') && !reached.has(l.to) && existsSync(join(ROOT, l.to))) {
          reached.add(l.to);
          queue.push(l.to);
        }
      }
    }
    expect(docFiles().filter((f) => !reached.has(f))).toEqual([]);
  });
});
