// CNI error results. Codes 0-99 are the spec's well-known ones; 100+ are this plugin's
// own (the spec leaves them to plugins), so a runtime log tells the failure class apart.

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD. */
  NotAvailable: 50,
  /** STATUS: cannot serve ADD, and existing containers may have limited connectivity. */
  LimitedConnectivity: 51,
  /** A kernel operation (bridge, veth, address, route) failed. */
  LinkSetup: 100,
  /** The built-in IPAM pool has no free address. */
  PoolExhausted: 101,
  /** The built-in IPAM store file exists but is not a store this plugin wrote. */
  StoreCorrupt: 102,
  /** CHECK found the container's networking different from prevResult. */
  CheckFailed: 103,
  /** A delegated IPAM plugin failed without a CNI error of its own. */
  DelegateFailed: 104,
  Internal: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
  ) {
    super(message);
    this.name = 'CniError';
  }
}

/** The error object printed on stdout (spec: "Error" result). */
export function errorResult(err: CniError, cniVersion: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion, code: err.code, msg: err.message };
  if (err.details) out.details = err.details;
  return out;
}

/**
 * Anything thrown that is not a CniError is an unexpected OS error (it carries an errno:
 * I/O failure) or a bug (internal): keep its text either way.
 */
export function asCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  const err = e as { errno?: unknown; message?: unknown } | null;
  if (err && typeof err === 'object' && typeof err.errno === 'number') return new CniError(ErrorCode.IoFailure, String(err.message));
  return new CniError(ErrorCode.Internal, e instanceof Error ? e.message : String(e));
}
