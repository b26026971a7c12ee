// Delegated IPAM: runs the plugin named by `ipam.type` from CNI_PATH with our own stdin and
// environment, the way the reference bridge plugin does (host-local, static, dhcp, or an
// external one such as Infoblox's). One addition: an older delegate that rejects our
// cniVersion (Debian's plugins stop at 1.0.0) is retried once at the highest version both
// sides support, and its result is read in that version.
import type { Attachment, DelegateIpamConfig, PluginConfig } from '../config.ts';
import type { Runner } from '../exec.ts';
import type { Command, Invocation } from '../spec/env.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import { formatResult, parseResult, type Result } from '../spec/result.ts';
import { SUPPORTED_VERSIONS, highestCommonVersion } from '../spec/versions.ts';
import type { Ipam, IpamAdd } from './ipam.ts';

export class DelegateIpam implements Ipam {
  private readonly pluginPath: string;

  constructor(
    private readonly ipam: DelegateIpamConfig,
    private readonly config: PluginConfig,
    inv: Invocation,
    private readonly runner: Runner,
    private readonly env: Record<string, string | undefined>,
    findExecutable: (name: string, dirs: readonly string[]) => string | undefined,
  ) {
    if (!inv.path.length) {
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_PATH is required to find the IPAM plugin '${ipam.type}'`);
    }
    const found = findExecutable(ipam.type, inv.path);
    if (!found) {
      throw new CniError(ErrorCode.InvalidConfig, `IPAM plugin '${ipam.type}' not found in CNI_PATH ${inv.path.join(':')}`);
    }
    this.pluginPath = found;
  }

  add(): IpamAdd {
    const stdout = this.exec('ADD');
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch {
      throw new CniError(ErrorCode.DelegateFailed, `IPAM plugin '${this.ipam.type}' printed no JSON result`, stdout.slice(0, 500));
    }
    const result = parseResult(parsed, `result of IPAM plugin '${this.ipam.type}'`);
    if (!result.ips?.length) throw new CniError(ErrorCode.DelegateFailed, `IPAM plugin '${this.ipam.type}' returned no IP address`);
    return { result, undo: () => this.del() };
  }

  del(): void {
    this.exec('DEL');
  }

  check(_prev: Result): void {
    this.exec('CHECK');
  }

  /** GC and STATUS exist from 1.1.0 on: a delegate that does not speak it has nothing to do. */
  gc(_valid: readonly Attachment[]): void {
    // The runtime put the valid list into our stdin; the delegate reads the same stdin.
    if (this.supportedVersions().includes(this.config.cniVersion)) this.exec('GC');
  }

  status(): void {
    if (this.supportedVersions().includes(this.config.cniVersion)) this.exec('STATUS');
  }

  /** Runs the delegate; an "incompatible version" answer is retried at the highest common version. */
  private exec(command: Command): string {
    const first = this.run(command, this.config.raw);
    if (first.ok) return first.stdout;
    if (first.error.code === ErrorCode.IncompatibleVersion) {
      const version = highestCommonVersion(SUPPORTED_VERSIONS, this.supportedVersions());
      if (version && version !== this.config.cniVersion) {
        const second = this.run(command, downgradeConfig(this.config.raw, version));
        if (second.ok) return second.stdout;
        throw second.error;
      }
    }
    throw first.error;
  }

  private run(command: Command, conf: Record<string, unknown>): { ok: true; stdout: string } | { ok: false; error: CniError } {
    const r = this.runner.run([this.pluginPath], JSON.stringify(conf), { ...this.env, CNI_COMMAND: command });
    if (r.error) return { ok: false, error: new CniError(ErrorCode.DelegateFailed, `cannot run IPAM plugin ${this.pluginPath}: ${r.error.message}`) };
    if (r.status === 0) return { ok: true, stdout: r.stdout };
    return { ok: false, error: delegateError(this.ipam.type, command, r.stdout, r.stderr) };
  }

  /** The delegate's VERSION answer (empty when it gives none). */
  private supportedVersions(): string[] {
    const r = this.runner.run([this.pluginPath], JSON.stringify({ cniVersion: this.config.cniVersion }), { ...this.env, CNI_COMMAND: 'VERSION' });
    try {
      const info = JSON.parse(r.stdout) as { supportedVersions?: unknown };
      return Array.isArray(info.supportedVersions) ? info.supportedVersions.filter((v): v is string => typeof v === 'string') : [];
    } catch {
      return [];
    }
  }
}

/** The same configuration at another cniVersion; a prevResult is rewritten to match. */
export function downgradeConfig(raw: Record<string, unknown>, version: string): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...raw, cniVersion: version };
  // 1.1.0-only keys would be unknown to the older plugin; it never needs them.
  delete conf['cni.dev/valid-attachments'];
  delete conf['cni.dev/attachments'];
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    conf.prevResult = formatResult(parseResult(raw.prevResult, 'prevResult'), version);
  }
  return conf;
}

/** A delegate's error JSON becomes our error, code and all (as the reference bridge does). */
export function delegateError(type: string, command: string, stdout: string, stderr: string): CniError {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && typeof e.msg === 'string') {
      return new CniError(e.code, `IPAM plugin '${type}' ${command}: ${e.msg}`, typeof e.details === 'string' ? e.details : undefined);
    }
  } catch {
    // not JSON: fall through
  }
  const text = (stdout + '\n' + stderr).trim().slice(0, 500);
  return new CniError(ErrorCode.DelegateFailed, `IPAM plugin '${type}' ${command} failed${text ? `: ${text}` : ''}`);
}
