// Every flag on every rendered command line exists in the pinned release and is not
// deprecated there. The lists are the official reference pages of each component
// (test/fixtures/k8s-flags, see its README); a flag removed upstream fails here, not on a VM.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan as makePlan, repoRoot } from '../helpers/cluster.ts';
import { execStart } from '../helpers/parse.ts';

const list = (name: string) => new Set(readFileSync(`${repoRoot}test/fixtures/k8s-flags/${name}.txt`, 'utf8').split('\n').filter(Boolean));
const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'] as const;
const reference = Object.fromEntries(COMPONENTS.map((c) => [c, { accepted: list(c), deprecated: list(`${c}.deprecated`) }]));

// Removed long ago; the seeds still carry them (they fail with "unknown flag" today).
const REMOVED = [
  'insecure-bind-address',
  'insecure-port',
  'enable-swagger-ui',
  'api-servers',
  'admission-control',
  'network-plugin',
  'allow-privileged',
  'pod-infra-container-image',
  'container-runtime',
  'master',
];

describe.each([
  ['docker runtime', {}],
  ['containerd runtime', { runtime: 'containerd' }],
])('command lines (%s)', (_, edits) => {
  const plan = makePlan(edits);
  const cluster = renderCluster(plan, placeholderPki(plan), loadTemplates());
  const commandLines = [...cluster.nodes].flatMap(([node, files]) =>
    files.filter((f) => f.path.endsWith('.service') && f.content.includes('ExecStart=')).map((f) => ({ node, path: f.path, ...execStart(f.content) })),
  );

  it('renders the Kubernetes components and etcd', () => {
    const names = new Set(commandLines.map((c) => c.binary.split('/').pop()));
    for (const c of COMPONENTS) expect(names).toContain(c);
  });

  it.each(COMPONENTS)('%s: every flag is accepted by the pinned release and not deprecated', (component) => {
    const lines = commandLines.filter((c) => c.binary.endsWith(`/${component}`));
    for (const line of lines) {
      for (const [flag] of line.flags) {
        expect(reference[component]!.accepted.has(flag), `${line.node} ${component} --${flag} is not a flag of the pinned release`).toBe(true);
        expect(reference[component]!.deprecated.has(flag), `${line.node} ${component} --${flag} is deprecated`).toBe(false);
      }
    }
  });

  it('no Kubernetes component carries a removed flag', () => {
    for (const line of commandLines.filter((c) => COMPONENTS.some((k) => c.binary.endsWith(`/${k}`)))) {
      const removed = line.flags.map(([f]) => f).filter((f) => REMOVED.includes(f) && !(f === 'allow-privileged' && line.binary.endsWith('/kube-apiserver')));
      expect(removed, `${line.node} ${line.path}`).toEqual([]);
    }
  });

  it('the apiserver signs service-account tokens (issuer + signing key)', () => {
    const api = commandLines.find((c) => c.binary.endsWith('/kube-apiserver'))!;
    const names = api.flags.map(([f]) => f);
    expect(names).toEqual(expect.arrayContaining(['service-account-issuer', 'service-account-signing-key-file', 'service-account-key-file']));
  });
});
