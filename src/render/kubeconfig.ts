// kubeconfig files with the CA and the client credential embedded, so each is one
// self-contained 0600 file.
import { stringify } from 'yaml';
import type { Credential } from '../pki/issue.ts';

const b64 = (pem: string) => Buffer.from(pem).toString('base64');

export function kubeconfig(options: { cluster: string; server: string; user: string; caCert: string; credential: Credential }): string {
  const { cluster, server, user, caCert, credential } = options;
  const context = `${user}@${cluster}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: { server, 'certificate-authority-data': b64(caCert) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(credential.cert), 'client-key-data': b64(credential.key) } }],
    contexts: [{ name: context, context: { cluster, user } }],
    'current-context': context,
    preferences: {},
  });
}
