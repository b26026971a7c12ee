// Handlebars set-up. Templates live under templates/ at the path they render to
// (templates/etc/ipsec.conf.hbs → /etc/ipsec.conf), are compiled once, and run in strict
// mode: a misspelt field is an error at render time, never an empty string in a config.
import Handlebars from 'handlebars';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packagePath } from '../package-root.ts';
import type { Flag } from './flags.ts';

const TEMPLATE_DIR = packagePath('templates');

type Template = (view: object) => string;

/** Compiled templates by target path ("/etc/ipsec.conf"). */
export interface TemplateSet {
  get(targetPath: string): Template;
}

function environment(): typeof Handlebars {
  const hb = Handlebars.create();
  // `ExecStart={{exec binary flags}}`: one `--name=value` per continuation line.
  hb.registerHelper('exec', (binary: string, flags: Flag[]) => [binary, ...flags.map(([name, value]) => `--${name}=${systemdWord(value)}`)].join(' \\\n    '));
  // `leftsubnet={{join node.selectors}}`: strongSwan's comma-separated lists.
  hb.registerHelper('join', (list: readonly string[]) => list.join(','));
  return hb;
}

export function loadTemplates(dir = TEMPLATE_DIR): TemplateSet {
  const hb = environment();
  const compiled = new Map<string, Template>();
  for (const file of walk(dir)) {
    if (!file.endsWith('.hbs')) continue;
    const target = '/' + relative(dir, file).slice(0, -'.hbs'.length);
    compiled.set(target, hb.compile(readFileSync(file, 'utf8'), { noEscape: true, strict: true }));
  }
  return {
    get(targetPath) {
      const t = compiled.get(targetPath);
      if (!t) throw new Error(`no template for ${targetPath} in ${dir}`);
      return t;
    },
  };
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** A value as one word of a systemd command line: `%` escaped, quoted if it has blanks. */
function systemdWord(value: string): string {
  const escaped = value.replace(/%/g, '%%');
  return /[\s"'\\;]/.test(escaped) ? `"${escaped.replace(/(["\\])/g, '\\$1')}"` : escaped;
}
