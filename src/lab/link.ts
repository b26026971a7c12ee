// Large files the labs put in place (the plugin in each node, the binaries dir's archives):
// the host's bytes shared, not copied, wherever the file system allows.
import { constants, copyFileSync, linkSync } from 'node:fs';

/** `to` holds the bytes of `from`: a hard link (no copy of a 100 MB plugin per node), else a copy (a reflink where it can be). */
export function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to, constants.COPYFILE_FICLONE);
  }
}
