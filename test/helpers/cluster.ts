// Cluster fixtures for tests: the default cluster.yaml, edits of it, and PKI material.
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import type { ClusterConfig } from '../../src/config/defaults.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { parseCluster } from '../../src/config/load.ts';
import { ensurePki, type PkiMaterials } from '../../src/pki/issue.ts';
import { caSpecs, certSpecs, pskIds } from '../../src/pki/specs.ts';
import { memoryStore, type PkiStore } from '../../src/pki/store.ts';
import { planCluster, type Plan } from '../../src/plan/plan.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const DEFAULT_CLUSTER_FILE = `${repoRoot}cluster.yaml`;
export const defaultClusterYaml = () => readFileSync(DEFAULT_CLUSTER_FILE, 'utf8');

/** The default cluster.yaml with `edits` applied as `path → value` (undefined deletes). */
export function clusterYaml(edits: Record<string, unknown> = {}): string {
  const doc = parseDocument(defaultClusterYaml());
  for (const [path, value] of Object.entries(edits)) {
    const keys = path.split('.').map((k) => (/^[0-9]+$/.test(k) ? Number(k) : k));
    if (value === undefined) doc.deleteIn(keys);
    else doc.setIn(keys, value);
  }
  return doc.toString();
}

export function config(edits: Record<string, unknown> = {}): ClusterConfig {
  return parseCluster(clusterYaml(edits));
}

/** The ConfigError cluster.yaml `text` is refused with (fails the test if it is accepted). */
export function refusedConfig(text: string): ConfigError {
  try {
    parseCluster(text);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected a ConfigError, but this cluster.yaml was accepted:\n${text}`);
}

export function plan(edits: Record<string, unknown> = {}): Plan {
  return planCluster(config(edits));
}

/** `minion1 … minionN` on a /16 node network, for scale tests. */
export function bigClusterYaml(minions: number): string {
  const nodes = [{ name: 'master', role: 'master', ip: '192.168.0.10' }];
  for (let i = 1; i <= minions; i++) nodes.push({ name: `minion${i}`, role: 'minion', ip: `192.168.${1 + Math.floor(i / 250)}.${(i % 250) + 1}` });
  return clusterYaml({ 'network.nodeCidr': '192.168.0.0/16', nodes });
}

export const FIXED_NOW = new Date('2026-01-15T12:00:00Z');

export async function issuePki(p: Plan, store: PkiStore = memoryStore(), now = FIXED_NOW): Promise<PkiMaterials> {
  return (await ensurePki(p, store, { now, random: (n) => webcrypto.getRandomValues(new Uint8Array(n)) })).materials;
}

/**
 * Stand-in material whose text names what it is: renders of it are stable across runs,
 * so golden files show where each credential lands without churning on every key.
 */
export function placeholderPki(p: Plan): PkiMaterials {
  const pem = (label: string, id: string) => `-----BEGIN ${label}-----\n(${id})\n-----END ${label}-----\n`;
  return {
    cas: Object.fromEntries(caSpecs(p).map((c) => [c.id, { cert: pem('CERTIFICATE', c.id), ...(c.keyOnMaster && { key: pem('PRIVATE KEY', c.id) }) }])),
    certs: Object.fromEntries(certSpecs(p).map((s) => [s.id, { cert: pem('CERTIFICATE', s.id), key: pem('PRIVATE KEY', s.id) }])),
    serviceAccount: { key: pem('PRIVATE KEY', 'sa'), pub: pem('PUBLIC KEY', 'sa') },
    psks: Object.fromEntries(pskIds(p).map((id) => [id, `psk-of-${id}`])),
    encryptionKeys: [{ name: 'key-placeholder', secret: 'c2VjcmV0Ym94LWtleS1vZi10aGUtcGxhY2Vob2xkZXI=' }],
  };
}
