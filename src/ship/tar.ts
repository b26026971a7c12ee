// A ustar archive writer: the stage goes to a node as one tar stream on the stdin of its
// ssh session (GNU tar unpacks it there). One stream, one round trip, modes carried in the
// headers, and it works through `sudo`, which SFTP does not. Large files are streamed from
// disk, never held in memory.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';

export type TarEntry =
  | { path: string; mode: number; content: Buffer | string }
  /** A file on this machine, read while the archive streams. */
  | { path: string; mode: number; file: string; size: number };

const BLOCK = 512;
/** GNU tar reads in records of 20 blocks; a stream ending mid-record makes it warn. */
const RECORD = 20 * BLOCK;
const MAX_SIZE = 8 ** 11 - 1;

export function tarStream(entries: readonly TarEntry[], mtime = Math.floor(Date.now() / 1000)): Readable {
  return Readable.from(generate(entries, mtime), { objectMode: false });
}

/** Bytes the archive of `entries` takes (headers, data, padding, end blocks). */
export function tarSize(entries: readonly TarEntry[]): number {
  const body = entries.reduce((n, e) => n + BLOCK + padded(sizeOf(e)), 0) + 2 * BLOCK;
  return Math.ceil(body / RECORD) * RECORD;
}

async function* generate(entries: readonly TarEntry[], mtime: number): AsyncGenerator<Buffer> {
  let written = 0;
  for (const e of entries) {
    const size = sizeOf(e);
    yield header(e.path, e.mode, size, mtime);
    let sent = 0;
    if ('file' in e) {
      for await (const chunk of createReadStream(e.file, { highWaterMark: 1 << 20 })) {
        sent += (chunk as Buffer).length;
        if (sent > size) break;
        yield chunk as Buffer;
      }
    } else {
      const data = typeof e.content === 'string' ? Buffer.from(e.content) : e.content;
      sent = data.length;
      yield data;
    }
    // A file that changed size while being read would corrupt every entry after it.
    if (sent !== size) throw new Error(`${'file' in e ? e.file : e.path} changed size while being archived (${size} → ${sent} bytes)`);
    const pad = padded(size) - size;
    if (pad) yield Buffer.alloc(pad);
    written += BLOCK + padded(size);
  }
  written += 2 * BLOCK;
  yield Buffer.alloc(2 * BLOCK + (Math.ceil(written / RECORD) * RECORD - written));
}

function sizeOf(e: TarEntry): number {
  return 'file' in e ? e.size : Buffer.byteLength(e.content);
}

function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function header(path: string, mode: number, size: number, mtime: number): Buffer {
  if (size > MAX_SIZE) throw new Error(`${path}: ${size} bytes is more than a ustar entry holds`);
  const { name, prefix } = splitPath(path);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, mode & 0o7777);
  octal(h, 108, 8, 0); // uid; unpacked with --no-same-owner anyway
  octal(h, 116, 8, 0); // gid
  octal(h, 124, 12, size);
  octal(h, 136, 12, mtime);
  h.fill(' ', 148, 156); // checksum field counts as spaces while summing
  h.write('0', 156, 'ascii'); // regular file
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

/** ustar keeps names ≤ 100 bytes, or a ≤ 155-byte directory prefix plus such a name. */
function splitPath(path: string): { name: string; prefix: string } {
  if (path.startsWith('/') || path.split('/').includes('..')) throw new Error(`tar entry ${path}: must be a relative path without ..`);
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { name, prefix };
  }
  throw new Error(`tar entry ${path}: too long for ustar`);
}
