// The libc calls the plugin makes directly (bun:ffi): netlink sockets, setns, flock, and
// the handful of file operations (sys/fs.ts): importing node:fs alone costs the compiled
// plugin ~3 ms of CPU on every start (measured), a third of its whole start-up.
// Bound on first use (dlopen of these symbols measured at ~0.2 ms). Only the compiled plugin imports this
// module; everything testable under Node depends on interfaces instead.
import { dlopen, FFIType, read } from 'bun:ffi';

const { i32, u64, ptr, cstring } = FFIType;

function load() {
  return dlopen('libc.so.6', {
    socket: { args: [i32, i32, i32], returns: i32 },
    send: { args: [i32, ptr, u64, i32], returns: i32 },
    recv: { args: [i32, ptr, u64, i32], returns: i32 },
    open: { args: [ptr, i32, i32], returns: i32 },
    close: { args: [i32], returns: i32 },
    read: { args: [i32, ptr, u64], returns: i32 },
    write: { args: [i32, ptr, u64], returns: i32 },
    fsync: { args: [i32], returns: i32 },
    rename: { args: [ptr, ptr], returns: i32 },
    mkdir: { args: [ptr, i32], returns: i32 },
    access: { args: [ptr, i32], returns: i32 },
    setns: { args: [i32, i32], returns: i32 },
    flock: { args: [i32, i32], returns: i32 },
    usleep: { args: [i32], returns: i32 },
    __errno_location: { args: [], returns: ptr },
    strerror: { args: [i32], returns: cstring },
  }).symbols;
}

let symbols: ReturnType<typeof load> | undefined;

export function libc(): ReturnType<typeof load> {
  symbols ??= load();
  return symbols;
}

export function errno(): number {
  return read.i32(libc().__errno_location() as number, 0);
}

export function strerror(n: number): string {
  return String(libc().strerror(n));
}

/** A NUL-terminated copy of `s` for char* arguments. */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + '\0');
}

/** Throws SysError(errno) when `ret` is negative. */
export function check(ret: number, what: string): number {
  if (ret < 0) {
    const e = errno();
    throw new SysError(e, `${what}: ${strerror(e)}`);
  }
  return ret;
}

export class SysError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'SysError';
  }
}

export const Errno = { ENOENT: 2, EINTR: 4, EAGAIN: 11, EACCES: 13, EEXIST: 17, ENODEV: 19, EINVAL: 22 } as const;
