// swanctl's `--pretty` output (vici messages, one key per line) as data: the SAs and the
// loaded connections of a charon, read through its vici socket inside the node.
//
//   list-sa event {            name {          key = value          key = [
//     minion1-minion2 {        }                                      item
//                                                                   ]

type ViciValue = string | string[] | ViciSection;
interface ViciSection {
  [key: string]: ViciValue;
}

export interface ViciMessage {
  /** e.g. "list-sa event", "list-conn event". */
  type: string;
  body: ViciSection;
}

export function parseViciPretty(text: string): ViciMessage[] {
  const messages: ViciMessage[] = [];
  const stack: ViciSection[] = [];
  let list: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (list) {
      if (line === ']') list = undefined;
      else list.push(line);
      continue;
    }
    let m: RegExpExecArray | null;
    if (line === '}') {
      stack.pop();
    } else if ((m = /^(\S+) = \[$/.exec(line))) {
      list = [];
      if (stack.length) stack[stack.length - 1]![m[1]!] = list;
    } else if ((m = /^(\S+) = (.*)$/.exec(line))) {
      if (stack.length) stack[stack.length - 1]![m[1]!] = m[2]!;
    } else if ((m = /^(.+) \{$/.exec(line))) {
      const section: ViciSection = {};
      if (stack.length) stack[stack.length - 1]![m[1]!] = section;
      else messages.push({ type: m[1]!, body: section });
      stack.push(section);
    }
  }
  return messages;
}

interface ChildSa {
  name: string;
  state: string;
  /** Inbound SPI at this end: a new one after every rekey. */
  spiIn: string;
  /** Seconds until this end rekeys it (absent: no rekey scheduled). */
  rekeyIn?: number;
  localTs: string[];
  remoteTs: string[];
}

export interface IkeSa {
  conn: string;
  state: string;
  /** This end initiated the IKE_SA. */
  initiator: boolean;
  /** The IKE_SA's SPIs ("initiator-spi/responder-spi"): new ones after every IKE rekey or re-authentication. */
  spis: string;
  remoteHost: string;
  /** Seconds until this end rekeys or re-authenticates it (absent: nothing scheduled). */
  rekeyIn?: number;
  children: ChildSa[];
}

interface ConnChild {
  name: string;
  localTs: string[];
  remoteTs: string[];
}

export interface Conn {
  name: string;
  localAddrs: string[];
  remoteAddrs: string[];
  children: ConnChild[];
}

const str = (v: ViciValue | undefined): string => (typeof v === 'string' ? v : '');
/** A numeric field as { key: n }, or nothing when absent. */
const seconds = (key: string, v: ViciValue | undefined): Record<string, number> => (typeof v === 'string' && /^\d+$/.test(v) ? { [key]: Number(v) } : {});
const list = (v: ViciValue | undefined): string[] => (Array.isArray(v) ? v : typeof v === 'string' ? [v] : []);
const sections = (v: ViciValue | undefined): [string, ViciSection][] =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? (Object.entries(v).filter(([, s]) => typeof s === 'object' && !Array.isArray(s)) as [string, ViciSection][])
    : [];

/** The named sections of every message of one type (e.g. each IKE_SA of every `list-sa event`). */
function entries(text: string, type: string): [string, ViciSection][] {
  return parseViciPretty(text)
    .filter((m) => m.type === type)
    .flatMap((m) => sections(m.body));
}

/** `swanctl --list-sas --pretty` → IKE_SAs with their CHILD_SAs. */
export function ikeSas(text: string): IkeSa[] {
  return entries(text, 'list-sa event').map(([conn, sa]) => ({
    conn,
    state: str(sa.state),
    initiator: str(sa.initiator) === 'yes',
    spis: `${str(sa['initiator-spi'])}/${str(sa['responder-spi'])}`,
    remoteHost: str(sa['remote-host']),
    ...seconds('rekeyIn', sa['rekey-time'] ?? sa['reauth-time']),
    children: sections(sa['child-sas']).map(([, c]) => ({
      name: str(c.name),
      state: str(c.state),
      spiIn: str(c['spi-in']),
      ...seconds('rekeyIn', c['rekey-time']),
      localTs: list(c['local-ts']),
      remoteTs: list(c['remote-ts']),
    })),
  }));
}

/** `swanctl --list-conns --pretty` → the connections charon loaded (from ipsec.conf too). */
export function conns(text: string): Conn[] {
  return entries(text, 'list-conn event').map(([name, c]) => ({
    name,
    localAddrs: list(c.local_addrs),
    remoteAddrs: list(c.remote_addrs),
    children: sections(c.children).map(([child, cc]) => ({ name: child, localTs: list(cc['local-ts']), remoteTs: list(cc['remote-ts']) })),
  }));
}
