// ipsec-cni entry point and composition root: CNI_* environment + stdin configuration in,
// Result or error JSON on stdout, exit status 0/1, one log line. Compiled by
// `bun build --compile` into dist/ipsec-cni (scripts/build-cni.ts).
import { configVersion, decodeConfig, logFileOf, validateConfig } from './config.ts';
import type { Call, Deps } from './context.ts';
import { findExecutable, processRunner } from './exec.ts';
import { BuiltinIpam } from './ipam/builtin.ts';
import { DelegateIpam } from './ipam/delegate.ts';
import { flockLocker } from './ipam/flock.ts';
import type { Ipam } from './ipam/ipam.ts';
import { FileStore } from './ipam/store.ts';
import { Links } from './links.ts';
import { writeLog, type LogRecord } from './log.ts';
import { DEFAULT_LOG_FILE } from './netconf.ts';
import { hostVethName, randomMac } from './names.ts';
import { exists, readStdin, writeStdout } from './sys/fs.ts';
import { add } from './commands/add.ts';
import { check } from './commands/check.ts';
import { del } from './commands/del.ts';
import { gc } from './commands/gc.ts';
import { status } from './commands/status.ts';
import { versionInfo } from './commands/version.ts';
import { parseCommand, parseInvocation, type Command } from './spec/env.ts';
import { CniError, ErrorCode, asCniError, errorResult } from './spec/errors.ts';
import { formatResult, type Result } from './spec/result.ts';
import { CURRENT_VERSION, versionAllows } from './spec/versions.ts';

// biome-ignore lint/suspicious/noConfusingVoidType: a verb prints a Result (ADD, CHECK) or nothing (DEL, GC, STATUS return void).
const COMMANDS: Record<Exclude<Command, 'VERSION'>, (call: Call) => Result | void> = {
  ADD: add,
  DEL: del,
  CHECK: check,
  GC: gc,
  STATUS: status,
};

function store(call: Call): FileStore | undefined {
  const { config } = call;
  return config.ipam.kind === 'builtin' ? new FileStore(config.ipam.dataDir, config.name, flockLocker, config.ipam.lockTimeoutMs) : undefined;
}

function ipam(call: Call): Ipam {
  const { inv, config } = call;
  if (config.ipam.kind === 'delegate') return new DelegateIpam(config.ipam, config, inv, processRunner, process.env, findExecutable);
  const hostVeth = inv.containerId ? hostVethName(inv.containerId, inv.ifname) : '';
  return new BuiltinIpam(config.ipam, config.name, store(call)!, inv, hostVeth);
}

function print(value: unknown): void {
  // A synchronous write: the process exits right after.
  writeStdout(JSON.stringify(value) + '\n');
}

function main(env: Record<string, string | undefined>): number {
  const started = performance.now();
  const record: LogRecord = { ts: new Date().toISOString(), cmd: env.CNI_COMMAND ?? '', ok: false, ms: 0, pid: process.pid };
  // Config's logFile, else $IPSEC_CNI_LOG (VERSION has no config), else the default.
  let logFile = env.IPSEC_CNI_LOG || DEFAULT_LOG_FILE;
  let cniVersion = CURRENT_VERSION;
  let code = 0;
  try {
    const command = parseCommand(env);
    if (command === 'VERSION') {
      print(versionInfo());
    } else {
      const stdin = readStdin();
      logFile = logFileOf(stdin) ?? logFile;
      const inv = parseInvocation(env);
      Object.assign(record, { containerId: inv.containerId || undefined, ifname: inv.ifname || undefined, netns: inv.netns || undefined });
      const raw = decodeConfig(stdin);
      cniVersion = configVersion(raw);
      if (!versionAllows(cniVersion, command)) {
        throw new CniError(ErrorCode.IncompatibleVersion, `config version ${cniVersion} does not allow ${command}`);
      }
      const config = validateConfig(raw);
      record.network = config.name;
      const deps: Deps = { links: new Links(), ipam, store, exists, mac: randomMac };
      const result = COMMANDS[command]({ inv, config, deps });
      if (command === 'ADD' && result) {
        record.ips = (result.ips ?? []).map((ip) => ip.address);
        print(formatResult(result, cniVersion));
      }
    }
    record.ok = true;
  } catch (e) {
    const err = asCniError(e);
    Object.assign(record, { code: err.code, msg: err.message });
    print(errorResult(err, cniVersion));
    code = 1;
  }
  record.ms = Math.round((performance.now() - started) * 100) / 100;
  writeLog(logFile, record);
  return code;
}

process.exit(main(process.env));
