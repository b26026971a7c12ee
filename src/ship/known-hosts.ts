// Host key verification, OpenSSH's way and never interactive: a node's key must be in a
// known_hosts file (plain, hashed or pattern entries, `[host]:port` for other ports) or
// pinned in cluster.yaml as a `SHA256:` fingerprint. An unknown key is refused unless the
// caller asked to record new keys (like StrictHostKeyChecking=accept-new); a changed or
// revoked key is always refused.
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface KnownHostsEntry {
  file: string;
  line: number;
  marker?: '@revoked' | '@cert-authority';
  /** The hosts field as written: patterns, or one hashed name. */
  hosts: string;
  type: string;
  blob: Buffer;
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString('latin1');
}

/** The name a host is recorded under: `host` on port 22, `[host]:port` otherwise. */
function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function parseKnownHosts(text: string, file: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    const marker = fields[0] === '@revoked' || fields[0] === '@cert-authority' ? (fields.shift() as KnownHostsEntry['marker']) : undefined;
    const [hosts, type, key] = fields;
    if (!hosts || !type || !key) return;
    const blob = Buffer.from(key, 'base64');
    // A blob naming another type than the line does is a corrupt line, not a key.
    if (keyType(blob) !== type) return;
    out.push({ file, line: i + 1, ...(marker && { marker }), hosts, type, blob });
  });
  return out;
}

export function readKnownHosts(files: readonly string[]): KnownHostsEntry[] {
  return files.filter((f) => existsSync(f)).flatMap((f) => parseKnownHosts(readFileSync(f, 'utf8'), f));
}

/** Does the entry's hosts field name `host:port`? (hashed names, patterns, negations) */
export function hostMatches(hosts: string, host: string, port: number): boolean {
  const name = hostKeyName(host, port);
  if (hosts.startsWith('|1|')) {
    const [, , salt, hash] = hosts.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const pattern of hosts.split(',')) {
    const negated = pattern.startsWith('!');
    if (!globMatch(negated ? pattern.slice(1) : pattern, name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function globMatch(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\[/g, '\\[')
    .replace(/\]/g, '\\]')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(name);
}

export type HostKeyVerdict =
  | { ok: true; how: string }
  | { ok: false; problem: 'unknown' | 'changed' | 'revoked'; presented: string; detail: string; file?: string };

export interface HostKeyPolicy {
  host: string;
  port: number;
  /** cluster.yaml nodes[].ssh.hostKey */
  pinned?: string;
  /** Files consulted, in order; new keys go to the first. */
  knownHosts: readonly string[];
  acceptNew: boolean;
}

/** Key types the policy knows for this host, for the server to present one of them. */
export function knownKeyTypes(policy: HostKeyPolicy, entries: readonly KnownHostsEntry[]): string[] {
  if (policy.pinned) return [];
  const types = entries.filter((e) => !e.marker && hostMatches(e.hosts, policy.host, policy.port)).map((e) => e.type);
  return [...new Set(types)];
}

export function checkHostKey(policy: HostKeyPolicy, entries: readonly KnownHostsEntry[], blob: Buffer): HostKeyVerdict {
  const presented = fingerprint(blob);
  const name = hostKeyName(policy.host, policy.port);
  const revoked = entries.find((e) => e.marker === '@revoked' && e.blob.equals(blob));
  if (revoked) return { ok: false, problem: 'revoked', presented, detail: `the key is marked @revoked in ${revoked.file}:${revoked.line}` };
  if (policy.pinned) {
    if (policy.pinned === presented) return { ok: true, how: 'pinned in cluster.yaml' };
    return { ok: false, problem: 'changed', presented, detail: `cluster.yaml pins ${policy.pinned}` };
  }
  const forHost = entries.filter((e) => !e.marker && hostMatches(e.hosts, policy.host, policy.port));
  const same = forHost.find((e) => e.blob.equals(blob));
  if (same) return { ok: true, how: `${same.file}:${same.line}` };
  if (forHost.length) {
    const where = forHost.map((e) => `${e.file}:${e.line} (${e.type} ${fingerprint(e.blob)})`).join(', ');
    return { ok: false, problem: 'changed', presented, detail: `${name} is known with another key: ${where}`, file: forHost[0]!.file };
  }
  if (policy.acceptNew && policy.knownHosts[0]) {
    const file = policy.knownHosts[0];
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${name} ${keyType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
    return { ok: true, how: `new, recorded in ${file}` };
  }
  return { ok: false, problem: 'unknown', presented, detail: `${name} is in none of ${policy.knownHosts.join(', ') || '(no known_hosts file)'}` };
}

/** The refusal, with what to do about it. */
export function describeRefusal(node: string, policy: HostKeyPolicy, v: Extract<HostKeyVerdict, { ok: false }>): string {
  const name = hostKeyName(policy.host, policy.port);
  const lines = [`${node}: host key of ${name} refused: ${v.problem} (${v.presented}); ${v.detail}`];
  if (v.problem === 'unknown') {
    lines.push(
      `    fix: compare ${v.presented} with the node's own key (on its console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub),`,
      `         then pin it as nodes[].ssh.hostKey in cluster.yaml, or re-run with --accept-new-host-keys to record it`,
    );
  } else if (v.problem === 'changed') {
    lines.push(
      '    fix: this is what a man-in-the-middle looks like; nothing was sent. If the node was reinstalled (vagrant destroy/up),',
      v.file
        ? `         remove the old entry (ssh-keygen -R '${name}' -f ${v.file}) and verify the new key`
        : '         update nodes[].ssh.hostKey in cluster.yaml after verifying the new key',
    );
  } else {
    lines.push('    fix: the node presents a revoked key; reinstall its host keys');
  }
  return lines.join('\n');
}
