// The ssh2 transport: key authentication, host key verification by known_hosts or a pinned
// fingerprint (never a prompt), and `sudo -n` for users other than root.
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import { checkHostKey, describeRefusal, knownKeyTypes, readKnownHosts, type HostKeyPolicy, type HostKeyVerdict } from './known-hosts.ts';
import { ShipError, type RemoteProcess, type Transport } from './transport.ts';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** Private key files to offer, in order (ssh-agent is used when none is given). */
  identityFiles: string[];
}

/** ssh2 negotiates algorithm names; known_hosts records key types. */
const ALGORITHMS_OF_TYPE: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** A connection whose host key passed the policy: the key the node presented (its blob), and how it was accepted. */
export interface VerifiedTransport extends Transport {
  readonly hostKey: Buffer;
  readonly hostKeyAccepted: string;
}

export async function connectSsh(node: string, target: SshTarget, policy: HostKeyPolicy, readyTimeout = 20_000): Promise<VerifiedTransport> {
  const entries = readKnownHosts(policy.knownHosts);
  const types = knownKeyTypes(policy, entries);
  const auth = authentication(node, target);
  const description = `${target.user}@${target.host}:${target.port}`;
  let verdict: HostKeyVerdict | undefined;
  let presented: Buffer = Buffer.alloc(0);
  const client = new Client();
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    ...auth,
    readyTimeout,
    keepaliveInterval: 10_000,
    hostVerifier: (key: Buffer) => {
      presented = key;
      verdict = checkHostKey(policy, entries, key);
      return verdict.ok;
    },
    // Ask for a key of a type we know for this host, as OpenSSH does; a node that has none
    // of them fails the handshake, which is reported as a changed key.
    ...(types.length && { algorithms: { serverHostKey: types.flatMap((t) => ALGORITHMS_OF_TYPE[t] ?? [t as ServerHostKeyAlgorithm]) } }),
  };
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', (err: Error & { level?: string }) => {
      client.end();
      if (verdict && !verdict.ok) return reject(new ShipError(describeRefusal(node, policy, verdict)));
      reject(new ShipError(`${node}: ${connectionProblem(err, description, types, target)}`));
    });
    client.connect(config);
  });
  const sudo = target.user === 'root' ? '' : 'sudo -n ';
  return {
    description,
    hostKey: presented,
    hostKeyAccepted: verdict?.ok ? verdict.how : '',
    exec: (command) => execOn(client, sudo + command),
    close: () => client.end(),
  };
}

function authentication(node: string, target: SshTarget): Pick<ConnectConfig, 'privateKey' | 'agent'> {
  for (const file of target.identityFiles) {
    let key: Buffer;
    try {
      key = readFileSync(file);
    } catch (err) {
      throw new ShipError(`${node}: private key ${file} cannot be read (${(err as NodeJS.ErrnoException).code}); fix nodes[].ssh.privateKey in cluster.yaml`);
    }
    if (/ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(key.toString('latin1', 0, 200)) || isEncryptedOpenSsh(key)) {
      throw new ShipError(`${node}: private key ${file} is passphrase-protected; add it to ssh-agent (ssh-add ${file}) and remove nodes[].ssh.privateKey`);
    }
    return { privateKey: key };
  }
  if (process.env.SSH_AUTH_SOCK) return { agent: process.env.SSH_AUTH_SOCK };
  throw new ShipError(`${node}: no private key to log in with: set nodes[].ssh.privateKey in cluster.yaml or run an ssh-agent`);
}

/** An OpenSSH-format key whose cipher is not "none". */
function isEncryptedOpenSsh(pem: Buffer): boolean {
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END/.exec(pem.toString('latin1'));
  if (!m) return false;
  const raw = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (raw.toString('latin1', 0, magic.length) !== magic) return false;
  const n = raw.readUInt32BE(magic.length);
  return raw.toString('latin1', magic.length + 4, magic.length + 4 + n) !== 'none';
}

function connectionProblem(err: Error & { level?: string; code?: string }, where: string, types: string[], target: SshTarget): string {
  if (err.level === 'client-authentication') {
    const keys = target.identityFiles.length ? target.identityFiles.join(', ') : 'the ssh-agent keys';
    return `${where} refused ${keys}; check nodes[].ssh.user and privateKey (is the public key in the node's authorized_keys?)`;
  }
  if (/no matching host key/i.test(err.message)) {
    return `${where} offers no host key of the type(s) known for it (${types.join(', ')}): treat it as a changed key; verify the node, then update known_hosts`;
  }
  if (err.level === 'client-timeout') return `${where} did not answer within the timeout; is the node up and the address right?`;
  if (err.code) return `cannot connect to ${where}: ${err.code}; is the node up and nodes[].ssh (or vagrant ssh-config) right?`;
  return `${where}: ${err.message}`;
}

function execOn(client: Client, command: string): Promise<RemoteProcess> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err: Error | undefined, channel: ClientChannel) => {
      if (err) return reject(new ShipError(`cannot start a command: ${err.message}`));
      let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
      channel.on('exit', (code: number | null, signal?: string) => (exit = { code: code ?? null, signal: signal ?? null }));
      const done = new Promise<{ code: number | null; signal: string | null }>((res) => channel.on('close', () => res(exit)));
      resolve({ stdin: channel, stdout: channel, stderr: channel.stderr, done });
    });
  });
}
