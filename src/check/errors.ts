// A check that is asked for something that cannot be (an unknown node, a check that does not
// exist): the user's mistake, reported in one line with the fix, never a stack trace.
export class CheckError extends Error {
  override name = 'CheckError';
}
