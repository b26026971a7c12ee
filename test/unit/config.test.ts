import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCluster } from '../../src/config/load.ts';
import { SCHEMA_FILE, schemaText, VALIDATOR_FILE, validatorText } from '../../scripts/write-schema.ts';
import { clusterYaml, config, refusedConfig } from '../helpers/cluster.ts';

const problems = refusedConfig;

describe('cluster.yaml defaults', () => {
  it('the shipped cluster.yaml is the seed topology', () => {
    const c = config();
    expect(c.nodes.map((n) => [n.name, n.role, n.ip])).toEqual([
      ['master', 'master', '192.168.10.10'],
      ['minion1', 'minion', '192.168.10.21'],
      ['minion2', 'minion', '192.168.10.22'],
      ['minion3', 'minion', '192.168.10.23'],
    ]);
    expect(c.network).toMatchObject({ podCidr: '10.240.0.0/16', serviceCidr: '10.30.0.0/24', clusterDns: '10.30.0.10', bridge: 'ipsec-br01' });
    expect(c.runtime).toBe('docker');
    expect(c.ipsec.auth).toBe('pubkey');
  });

  it('only `nodes` is required; everything else defaults', () => {
    const c = parseCluster('nodes:\n  - {name: master, role: master, ip: 192.168.10.10}\n  - {name: minion1, ip: 192.168.10.21}\n');
    expect(c.network.podCidr).toBe('10.240.0.0/16');
    expect(c.nodes[1]).toMatchObject({ role: 'minion', memory: 2048, cpus: 2 });
    expect(c.versions.kubernetes.version).toMatch(/^v1\.3[5-7]\./);
    expect(c.versions.kubernetes.server.checksum).toMatch(/^sha512:[0-9a-f]{128}$/);
  });

  it('schema/cluster.schema.json and the precompiled validator are generated from src/config/schema.ts (npm run schema)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(schemaText());
    expect(readFileSync(VALIDATOR_FILE, 'utf8')).toBe(validatorText());
  });
});

// Every invalid input names the key, shows the value, and says how to fix it.
const invalid: [string, Record<string, unknown>, string, RegExp][] = [
  ['pod range overlaps the service range', { 'network.serviceCidr': '10.240.128.0/24' }, 'network.serviceCidr', /overlaps the pod range/],
  ['pod range overlaps the node network', { 'network.podCidr': '192.168.0.0/16' }, 'network.podCidr', /overlaps the node network/],
  ['duplicate node name', { 'nodes.2.name': 'minion1' }, 'nodes[2].name', /also the name of nodes\[1\]/],
  ['duplicate node IP', { 'nodes.3.ip': '192.168.10.22' }, 'nodes[3].ip', /also the address of nodes\[2\] \(minion2\)/],
  ['node IP inside the pod range', { 'nodes.1.ip': '10.240.9.9' }, 'nodes[1].ip', /inside the pod range/],
  ['node IP outside the node network', { 'nodes.1.ip': '192.168.99.21' }, 'nodes[1].ip', /outside network.nodeCidr/],
  ['DNS outside the service range', { 'network.clusterDns': '10.31.0.10' }, 'network.clusterDns', /outside network.serviceCidr/],
  ['DNS on the kubernetes service VIP', { 'network.clusterDns': '10.30.0.1' }, 'network.clusterDns', /kubernetes service VIP/],
  ['more nodes than /24 subnets', { 'network.podCidr': '10.240.0.0/23' }, 'nodes', /more nodes than \/24 subnets/],
  ['CIDR prefix too long', { 'network.podCidr': '10.240.0.0/33' }, 'network.podCidr', /not an IPv4 CIDR/],
  ['CIDR with host bits', { 'network.podCidr': '10.240.1.5/16' }, 'network.podCidr', /host bits set; the network is 10.240.0.0\/16/],
  ['malformed IP', { 'nodes.1.ip': '192.168.10.300' }, 'nodes[1].ip', /not a valid ipv4/],
  ['unknown key, with a suggestion', { 'network.podCIDR': '10.240.0.0/16' }, 'network.podCIDR', /not a known key/],
  ['wrong type', { 'network.underlayMtu': 'jumbo' }, 'network.underlayMtu', /must be an integer/],
  ['value not in the enum', { runtime: 'cri-o' }, 'runtime', /not one of the allowed values/],
  ['nodes missing', { nodes: undefined }, 'nodes', /is required/],
  ['node name without a number and no podSubnet', { 'nodes.3.name': 'worker' }, 'nodes[3].name', /does not end in a number/],
  ['derived subnet beyond the pod range', { 'nodes.3.name': 'minion300' }, 'nodes[3].name', /derives pod subnet #300.*only 256/],
  ['two nodes deriving one subnet', { 'nodes.3.name': 'worker1' }, 'nodes[3].name', /already owned by nodes\[1\] \(minion1\)/],
  ['explicit podSubnet outside the pod range', { 'nodes.1.podSubnet': '10.241.1.0/24' }, 'nodes[1].podSubnet', /must be a \/24 inside network.podCidr/],
  ['explicit podSubnet of another node', { 'nodes.1.podSubnet': '10.240.3.0/24' }, 'nodes[3].name', /already owned by nodes\[1\]/],
  ['no master', { 'nodes.0.role': 'minion', 'nodes.0.name': 'minion0' }, 'nodes', /no node with role: master/],
  ['two masters', { 'nodes.1.role': 'master' }, 'nodes[1].role', /second master/],
  ['pod MTU larger than the tunnel carries', { 'network.podMtu': 1480 }, 'network.podMtu', /at most 1423/],
  ['pod MTU above the userspace ESP limit', { 'network.podMtu': 1410, 'ipsec.espMode': 'userspace' }, 'network.podMtu', /at most 1400/],
  ['rekey margin not shorter than the lifetime', { 'ipsec.rekeyMargin': '2h' }, 'ipsec.rekeyMargin', /2×rekeyMargin must be shorter than lifetime/],
  [
    'rekey window (2×margin, rekeyfuzz) not inside the lifetime',
    { 'ipsec.rekeyMargin': '30m' },
    'ipsec.rekeyMargin',
    /ipsec.lifetime = 1h.*2×rekeyMargin must be shorter/,
  ],
  ['node encryption with userspace ESP', { 'ipsec.nodeEncryption': true, 'ipsec.espMode': 'userspace' }, 'ipsec.nodeEncryption', /needs ESP in the kernel/],
  ['malformed duration', { 'ipsec.lifetime': '1 hour' }, 'ipsec.lifetime', /wrong form/],
  ['node subnet prefix shorter than the pod range', { 'network.nodeSubnetPrefix': 12 }, 'network.nodeSubnetPrefix', /between the pod range's prefix/],
  [
    'release URL of another version',
    {
      'versions.kubernetes': {
        version: 'v1.35.1',
        server: { url: 'https://dl.k8s.io/v1.35.0/kubernetes-server-linux-amd64.tar.gz', checksum: `sha512:${'a'.repeat(128)}` },
        node: { url: 'https://dl.k8s.io/v1.35.1/kubernetes-node-linux-amd64.tar.gz', checksum: `sha512:${'b'.repeat(128)}` },
      },
    },
    'versions.kubernetes.server.url',
    /does not name versions.kubernetes.version = v1.35.1/,
  ],
  [
    'checksum without algorithm',
    { 'versions.etcd': { version: 'v3.6.6', archive: { url: 'https://example.invalid/etcd-v3.6.6.tar.gz', checksum: 'abc' } } },
    'versions.etcd.archive.checksum',
    /wrong form/,
  ],
  [
    'plain-http download',
    { 'versions.etcd': { version: 'v3.6.6', archive: { url: 'http://example.invalid/etcd-v3.6.6.tar.gz', checksum: `sha256:${'c'.repeat(64)}` } } },
    'versions.etcd.archive.url',
    /wrong form/,
  ],
];

describe('invalid cluster.yaml', () => {
  it.each(invalid)('%s', (_, edits, path, problem) => {
    const err = problems(clusterYaml(edits));
    const issue = err.issues.find((i) => i.path === path);
    expect(issue, `no issue for ${path} in:\n${err.message}`).toBeDefined();
    expect(`${issue!.problem}`).toMatch(problem);
    expect(issue!.fix.length).toBeGreaterThan(5);
    expect(err.message).toContain('nothing was written');
  });

  it('suggests the key that was meant', () => {
    const err = problems(clusterYaml({ 'network.podCIDR': '10.240.0.0/16' }));
    expect(err.issues[0]!.fix).toMatch(/did you mean `podCidr`/);
  });

  it('points at the line and column of the offending value', () => {
    const text = clusterYaml({ 'nodes.2.ip': '192.168.10.21' });
    const err = problems(text);
    const issue = err.issues.find((i) => i.path === 'nodes[2].ip')!;
    const line = text.split('\n')[issue.line! - 1]!;
    expect(line).toContain('192.168.10.21');
    expect(err.message).toMatch(/cluster\.yaml:\d+:\d+: nodes\[2\]\.ip = "192\.168\.10\.21"/);
  });

  it('reports every problem at once', () => {
    const err = problems(clusterYaml({ 'nodes.2.ip': '192.168.10.21', 'network.clusterDns': '10.99.0.1', runtime: 'rkt' }));
    expect(err.issues.map((i) => i.path)).toEqual(['runtime']);
    // structure first; once the structure is right, all cross-key problems come together
    const err2 = problems(clusterYaml({ 'nodes.2.ip': '192.168.10.21', 'network.clusterDns': '10.99.0.1' }));
    expect(err2.issues.map((i) => i.path).sort()).toEqual(['network.clusterDns', 'nodes[2].ip']);
  });

  it('YAML syntax errors carry their position', () => {
    const err = problems('nodes:\n  - name: master\n   ip: [unclosed\n');
    expect(err.issues[0]!.path).toBe('(yaml)');
    expect(err.issues[0]!.line).toBeGreaterThan(0);
  });

  it('duplicate keys are an error, not a silent override', () => {
    const err = problems('nodes:\n  - name: master\n    name: other\n    role: master\n    ip: 192.168.10.10\n');
    expect(err.issues[0]!.problem).toMatch(/unique|duplicate/i);
  });
});
