// One JSON line per invocation. Deliberately not the stdin configuration (it may carry
// credentials for an external IPAM): command, attachment, outcome, duration.
import { SysError } from './sys/libc.ts';
import { appendText, dirname, mkdirs } from './sys/fs.ts';

export interface LogRecord {
  ts: string;
  cmd: string;
  network?: string;
  containerId?: string;
  ifname?: string;
  netns?: string;
  /** ADD: the addresses handed out. */
  ips?: string[];
  ok: boolean;
  code?: number;
  msg?: string;
  ms: number;
  pid: number;
}

/** A single append (O_APPEND, one write) keeps parallel invocations' lines whole. */
export function writeLog(path: string, record: LogRecord): void {
  const line = JSON.stringify(record) + '\n';
  try {
    appendText(path, line);
  } catch (e) {
    if (!(e instanceof SysError && e.errno === 2)) {
      reportLogFailure(path, e);
      return;
    }
    try {
      mkdirs(dirname(path));
      appendText(path, line);
    } catch (e2) {
      reportLogFailure(path, e2);
    }
  }
}

/** A log that cannot be written must not fail the CNI call: say so on stderr (runtimes keep it). */
function reportLogFailure(path: string, e: unknown): void {
  process.stderr.write(`ipsec-cni: cannot write log ${path}: ${(e as Error).message}\n`);
}
