// flock(2) through bun:ffi: the only lock primitive here that the kernel drops when the
// holder is SIGKILLed (Node/Bun expose none). Imported only by the compiled entry point;
// everything else depends on the Locker interface.
import { closeSync, openSync } from 'node:fs';
import { dlopen, FFIType, read } from 'bun:ffi';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { Locker } from './store.ts';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EINTR = 4;
const EWOULDBLOCK = 11;

type Libc = {
  flock: (fd: number, op: number) => number;
  errno: () => number;
};

let libc: Libc | undefined;

function load(): Libc {
  if (!libc) {
    const lib = dlopen('libc.so.6', {
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    libc = {
      flock: (fd, op) => lib.symbols.flock(fd, op) as number,
      errno: () => read.i32(lib.symbols.__errno_location() as number, 0),
    };
  }
  return libc;
}

/**
 * Non-blocking attempts with a short, growing pause: a blocking flock cannot time out, and a
 * holder that hangs (not dies) must turn into "try again later" (code 11) rather than
 * hang every ADD on the node until the runtime's own timeout.
 */
export const flockLocker: Locker = {
  acquire(lockPath, timeoutMs) {
    const c = load();
    const fd = openSync(lockPath, 'a', 0o644);
    const deadline = Date.now() + timeoutMs;
    let pause = 0.2;
    for (;;) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
      const errno = c.errno();
      if (errno !== EWOULDBLOCK && errno !== EINTR) {
        closeSync(fd);
        throw new CniError(ErrorCode.IoFailure, `flock(${lockPath}) failed with errno ${errno}`);
      }
      if (Date.now() >= deadline) {
        closeSync(fd);
        throw new CniError(ErrorCode.TryAgainLater, `IPAM store lock ${lockPath} is busy for more than ${timeoutMs} ms`);
      }
      Bun.sleepSync(pause);
      pause = Math.min(pause * 2, 5);
    }
    return () => {
      c.flock(fd, LOCK_UN);
      closeSync(fd);
    };
  },
};
