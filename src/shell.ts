// Quoting for command lines that pass through a POSIX shell (ssh runs its command through the
// remote user's shell; the lab hands scripts to `sh -c`).

/** A word for a POSIX shell command line: bare when it is plain, single-quoted otherwise. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
