// Finding: a YAML alias bomb ("billion laughs") ended in a stack trace instead of an error
// naming the problem. Now it, and every other way cluster.yaml can fail to parse, ends in the
// project's error (exit 2, file:line, a fix) with nothing written: through the CLI, on disk.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCluster } from '../../src/config/load.ts';
import { main } from '../../src/render/cli.ts';
import { cliSandbox } from '../helpers/render-cli.ts';

const box = cliSandbox('secyaml');

/** Nine levels of nine aliases each: 9^9 (387 million) strings once expanded. */
function billionLaughs(): string {
  const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i <= 8; i++)
    lines.push(
      `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(', ')}]`,
    );
  return `${lines.join('\n')}\nnodes: *a8\n`;
}

async function renderFile(text: string | Buffer): Promise<number> {
  writeFileSync(join(box.dir, 'cluster.yaml'), text);
  return main(['--config', join(box.dir, 'cluster.yaml'), '--out', join(box.dir, 'out')]);
}

describe('hostile or broken YAML ends in the project error, with nothing written', () => {
  it('a billion-laughs alias bomb is named, at its first alias', async () => {
    expect(await renderFile(billionLaughs())).toBe(2);
    const message = box.output.join('\n');
    expect(message).toMatch(/cluster\.yaml:2:\d+: \(yaml\): its aliases expand to more than 100 copies \(a "billion laughs" document\?\)/);
    expect(message).toContain('nothing was written');
    expect(message).toContain('fix: write the values out');
    expect(readdirSync(box.dir)).toEqual(['cluster.yaml']);
  });

  it.each([
    ['nesting 5000 levels deep', `nodes: ${'['.repeat(5000)}${']'.repeat(5000)}\n`, /\(yaml\): maximum call stack size exceeded/i],
    [
      'binary garbage',
      Buffer.from([0x00, 0xff, 0xfe, 0x1b, 0x5b, 0x32, 0x4a, 0x0a, 0x00, 0x3a, 0x7b]),
      /cluster\.yaml:1:1: \(top level\) = "\\u0000.*\\u001b\[2J.*": must be an object/,
    ],
    ['an unclosed quote', 'nodes:\n  - name: "master\n', /:3:1: \(yaml\): Missing closing "quote/],
    ['tabs for indentation', 'nodes:\n\t- name: master\n', /:2:\d+: \(yaml\): /],
    ['a scalar instead of a mapping', 'just a string\n', /\(top level\) = "just a string": must be an object/],
    ['a list instead of a mapping', '- name: master\n', /\(top level\) = .*: must be an object/],
    ['an alias to no anchor', 'nodes: *missing\n', /:1:8: \(yaml\): unresolved alias .*: missing\n\s+fix: set the anchor/],
    ['two documents', 'nodes: []\n---\nnodes: []\n', /:2:1: \(yaml\): Source contains multiple documents/],
  ])('%s', async (_, text, problem) => {
    expect(await renderFile(text)).toBe(2);
    const message = box.output.join('\n');
    expect(message).toMatch(problem);
    expect(message).toContain('nothing was written');
    expect(message).not.toMatch(/^\s+at /m);
    expect(readdirSync(box.dir)).toEqual(['cluster.yaml']);
    expect(existsSync(join(box.dir, '.kube-ipsec'))).toBe(false);
  });

  it('a cluster.yaml that uses anchors and aliases as people do still works', () => {
    const text = [
      'nodes:',
      '  - {name: master, role: master, ip: 192.168.10.10, ssh: &ssh {user: vagrant, port: 22}}',
      '  - {name: minion1, ip: 192.168.10.21, ssh: *ssh}',
      '  - {name: minion2, ip: 192.168.10.22, ssh: *ssh}',
      '',
    ].join('\n');
    expect(parseCluster(text).nodes.map((n) => n.ssh)).toEqual([
      { user: 'vagrant', port: 22 },
      { user: 'vagrant', port: 22 },
      { user: 'vagrant', port: 22 },
    ]);
  });
});
