// Where issued material persists between renders (the state dir, kept out of git).
// Re-rendering reads it back, so certificates and keys stay the same until they must change.
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface PkiStore {
  /** Content of an entry, or undefined if it does not exist. */
  read(name: string): string | undefined;
  /** Writes an entry atomically; `secret` entries are readable by the owner only. */
  write(name: string, content: string, secret: boolean): void;
  /** Removes an entry (a retired generation); no error if it does not exist. */
  remove(name: string): void;
  /** Names of every entry. */
  list(): string[];
  /** Where entries live, for messages. */
  readonly location: string;
}

export function directoryStore(dir: string): PkiStore {
  return {
    location: dir,
    read(name) {
      try {
        return readFileSync(join(dir, name), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    write(name, content, secret) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
      const target = join(dir, name);
      const tmp = `${target}.tmp-${process.pid}`;
      // Created with the final mode: a key is never readable by others, even for an instant.
      const fd = openSync(tmp, 'w', secret ? 0o600 : 0o644);
      try {
        writeSync(fd, content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, target);
    },
    remove(name) {
      rmSync(join(dir, name), { force: true });
    },
    list() {
      try {
        return readdirSync(dir).filter((n) => !n.includes('.tmp-'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    },
  };
}

export function memoryStore(initial: Record<string, string> = {}): PkiStore & { entries: Map<string, { content: string; secret: boolean }> } {
  const entries = new Map(Object.entries(initial).map(([k, v]) => [k, { content: v, secret: k.endsWith('.key') }]));
  return {
    location: '(memory)',
    entries,
    read: (name) => entries.get(name)?.content,
    write: (name, content, secret) => void entries.set(name, { content, secret }),
    remove: (name) => void entries.delete(name),
    list: () => [...entries.keys()],
  };
}

/** Reads through to `base`, keeps writes in memory: previews (--diff) never touch the state. */
export function overlayStore(base: PkiStore): PkiStore {
  const written = new Map<string, string | undefined>();
  return {
    location: `${base.location} (preview, not saved)`,
    read: (name) => (written.has(name) ? written.get(name) : base.read(name)),
    write: (name, content) => void written.set(name, content),
    remove: (name) => void written.set(name, undefined),
    list: () => [...new Set([...base.list(), ...written.keys()])].filter((n) => written.get(n) !== undefined || !written.has(n)),
  };
}
