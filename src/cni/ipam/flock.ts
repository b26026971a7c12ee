// flock(2) through bun:ffi: the only lock primitive here that the kernel drops when the
// holder is SIGKILLed (Node/Bun expose none). Imported only by the compiled entry point;
// everything else depends on the Locker interface.
import { closeFile, openForLock } from '../sys/fs.ts';
import { Errno, errno, libc } from '../sys/libc.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { Locker } from './store.ts';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/**
 * Non-blocking attempts with a short, growing pause: a blocking flock cannot time out, and a
 * holder that hangs (not dies) must turn into "try again later" (code 11) rather than
 * hang every ADD on the node until the runtime's own timeout.
 */
export const flockLocker: Locker = {
  acquire(lockPath, timeoutMs) {
    const c = libc();
    const fd = openForLock(lockPath);
    const deadline = Date.now() + timeoutMs;
    let pauseUs = 100; // Bun.sleepSync truncates to whole ms: usleep for the short first waits
    for (;;) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
      const err = errno();
      if (err !== Errno.EAGAIN && err !== Errno.EINTR) {
        closeFile(fd);
        throw new CniError(ErrorCode.IoFailure, `flock(${lockPath}) failed with errno ${err}`);
      }
      if (Date.now() >= deadline) {
        closeFile(fd);
        throw new CniError(ErrorCode.TryAgainLater, `IPAM store lock ${lockPath} is busy for more than ${timeoutMs} ms`);
      }
      c.usleep(pauseUs);
      pauseUs = Math.min(pauseUs * 2, 500); // a holder keeps the lock ~1-2 ms: do not oversleep it
    }
    return () => {
      c.flock(fd, LOCK_UN);
      closeFile(fd);
    };
  },
};
