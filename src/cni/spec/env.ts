// The CNI_* environment of one invocation, validated per verb (spec "Parameters"). Pure:
// whether the netns path exists is checked by the command that needs it.
import { CniError, ErrorCode } from './errors.ts';
import { isValidIfname } from '../names.ts';

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type Command = (typeof COMMANDS)[number];

export interface Invocation {
  command: Command;
  containerId: string;
  /** Empty when not given (allowed for DEL, GC, STATUS, VERSION). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key → value. */
  args: Map<string, string>;
  /** CNI_PATH split on ':'; needed only to find a delegated IPAM plugin. */
  path: string[];
}

/** Spec: "must start with an alphanumeric character, optionally followed by … alphanumeric, _ . -". */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const NEEDS: Record<Command, { containerId: boolean; netns: boolean; ifname: boolean }> = {
  ADD: { containerId: true, netns: true, ifname: true },
  CHECK: { containerId: true, netns: true, ifname: true },
  DEL: { containerId: true, netns: false, ifname: true },
  GC: { containerId: false, netns: false, ifname: false },
  STATUS: { containerId: false, netns: false, ifname: false },
  VERSION: { containerId: false, netns: false, ifname: false },
};

function invalid(msg: string): never {
  throw new CniError(ErrorCode.InvalidEnvironment, msg);
}

/** "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web" → Map. A value may itself contain '='. */
export function parseCniArgs(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of s.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) invalid(`CNI_ARGS: '${pair}' is not KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

export function parseCommand(env: Record<string, string | undefined>): Command {
  const command = env.CNI_COMMAND ?? '';
  if (!command) invalid('CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    invalid(`CNI_COMMAND '${command}' is not one of ${COMMANDS.join(', ')}`);
  }
  return command as Command;
}

export function parseInvocation(env: Record<string, string | undefined>): Invocation {
  const command = parseCommand(env);
  const need = NEEDS[command];
  const containerId = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (need.containerId && !containerId) invalid(`CNI_CONTAINERID is required for ${command}`);
  if (containerId && !CONTAINER_ID.test(containerId)) {
    invalid(`CNI_CONTAINERID '${containerId}' must start with a letter or digit followed by letters, digits, '_', '.' or '-'`);
  }
  if (need.netns && !netns) invalid(`CNI_NETNS is required for ${command}`);
  if (netns && !netns.startsWith('/')) invalid(`CNI_NETNS '${netns}' must be an absolute path`);
  if (need.ifname && !ifname) invalid(`CNI_IFNAME is required for ${command}`);
  if (ifname && !isValidIfname(ifname)) {
    invalid(`CNI_IFNAME '${ifname}' is not a valid interface name (1-15 characters, not '.' or '..', no '/', ':' or whitespace)`);
  }
  return {
    command,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
  };
}
