// Files the API server reads besides certificates: how Secrets are encrypted before they
// reach etcd (EncryptionConfiguration) and what it records of every request (audit Policy).
import { stringify } from 'yaml';
import type { EncryptionKey } from '../pki/issue.ts';

/**
 * Secrets encrypted with secretbox (XSalsa20-Poly1305): of the providers that work with a
 * local key, the one the Kubernetes documentation rates strong (aescbc: weak, padding
 * oracles; aesgcm: only with automated rotation every 200k writes; kms needs an external
 * service). https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/#providers
 *
 * The first key encrypts, every key decrypts (a previous one stays while a rotation is open);
 * identity comes last so that Secrets written before encryption was on stay readable until
 * they are rewritten (the add-on unit rewrites them: templates/…/apply-addons).
 */
export function encryptionConfiguration(keys: readonly EncryptionKey[], generated: string): string {
  if (!keys.length) throw new Error('internal: no encryption key (ensurePki makes one)');
  return (
    `# ${generated}\n# The keys that encrypt Secrets in etcd: readable by root only, on the master only.\n` +
    stringify({
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'EncryptionConfiguration',
      resources: [
        {
          resources: ['secrets'],
          providers: [{ secretbox: { keys: keys.map((k) => ({ name: k.name, secret: k.secret })) } }, { identity: {} }],
        },
      ],
    })
  );
}

/**
 * Who did what, never with what content: metadata (user, verb, resource, response code) of
 * every request, no request or response body at all, so no Secret, ConfigMap or token can end
 * up in the log. Rules match in order: the first drops health probes and leader-election
 * renewals (a write every two seconds each, nothing to audit). Modelled on the documentation's
 * example policy (https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/#audit-policy),
 * without its RequestResponse rules.
 */
export function auditPolicy(generated: string): string {
  return (
    `# ${generated}\n` +
    stringify({
      apiVersion: 'audit.k8s.io/v1',
      kind: 'Policy',
      // One event per request (at its response), not a second one when it arrives.
      omitStages: ['RequestReceived'],
      rules: [
        { level: 'None', nonResourceURLs: ['/healthz*', '/livez*', '/readyz*', '/version'] },
        {
          level: 'None',
          users: ['system:kube-controller-manager', 'system:kube-scheduler'],
          verbs: ['get', 'update'],
          namespaces: ['kube-system'],
          resources: [{ group: 'coordination.k8s.io', resources: ['leases'] }],
        },
        {
          level: 'None',
          resources: [
            { group: '', resources: ['events'] },
            { group: 'events.k8s.io', resources: ['events'] },
          ],
        },
        // Named although the catch-all below says the same: whatever is added above it later,
        // these never get a level that records bodies.
        {
          level: 'Metadata',
          resources: [
            { group: '', resources: ['secrets', 'configmaps', 'serviceaccounts/token'] },
            { group: 'authentication.k8s.io', resources: ['tokenreviews'] },
          ],
        },
        { level: 'Metadata' },
      ],
    })
  );
}
