// Readers for rendered files, so tests check what a daemon would actually read.
import type { RenderedFile } from '../../src/render/files.ts';

export function fileAt(files: RenderedFile[], path: string): RenderedFile {
  const f = files.find((x) => x.path === path);
  if (!f) throw new Error(`${path} not rendered; have:\n${files.map((x) => x.path).join('\n')}`);
  return f;
}

/** A systemd unit's ExecStart: the binary and its `--name=value` flags in order. */
export function execStart(unitText: string): { binary: string; flags: [string, string][] } {
  const m = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unitText);
  if (!m) throw new Error('no ExecStart');
  const words = m[1]!.replace(/\\\n/g, ' ').trim().split(/\s+/);
  const flags = words.slice(1).map((w): [string, string] => {
    const f = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(w);
    if (!f) throw new Error(`not a --flag: ${w}`);
    return [f[1]!, f[2] ?? ''];
  });
  return { binary: words[0]!, flags };
}

export function flagValue(unitText: string, name: string): string {
  const hit = execStart(unitText).flags.find(([n]) => n === name);
  if (!hit) throw new Error(`--${name} not set`);
  return hit[1];
}

/** unit file → section → key → values (keys may repeat). */
export function unitSections(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const s = /^\[(.+)\]$/.exec(line);
    if (s) sections.set(s[1]!, (current = new Map()));
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv && current) current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

/** ipsec.conf → conn name → settings (including `%default` and `setup`). */
export function ipsecConns(text: string): Map<string, Record<string, string>> {
  const conns = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '');
    const head = /^(conn|config)\s+(\S+)/.exec(line);
    if (head) conns.set(head[2]!, (current = {}));
    const kv = /^\s+([a-z_]+)=(.*)$/.exec(line);
    if (kv && current) current[kv[1]!] = kv[2]!.trim().replace(/^"(.*)"$/, '$1');
  }
  return conns;
}

/** `NAME=value` assignments of a shell script or env file. */
export function shellVars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^([A-Z_]+)=("?)(.*)\2$/gm)) out[m[1]!] = m[3]!;
  return out;
}
