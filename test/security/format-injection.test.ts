// Finding: values from cluster.yaml changed the meaning of the formats they land in. A tab or
// newline in versions.*.url added rows to artifacts.tsv, which the node installs as root; a
// nodes[].ssh.host starting with `-` became an OpenSSH option; vagrant.libvirt.cpuModel went
// unescaped into libvirt's domain XML; network.bridge could name the underlay NIC, which the
// guard then let traffic out of. Each is now checked at the schema, and where a real tool
// reads the value (install-binaries, ssh, vagrant-libvirt's template) the tool shows that
// what the schema admits keeps its meaning.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostKeyAlgorithms, sshArgv, type OpenSshNode } from '../../src/check/openssh.ts';
import { parseCluster } from '../../src/config/load.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { runRender } from '../../src/render/pipeline.ts';
import { clusterYaml, refusedConfig, repoRoot } from '../helpers/cluster.ts';
import { netnsLab } from '../helpers/netns.ts';
import { runScript } from '../helpers/ship-node.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-secfmt-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const refusal = (edits: Record<string, unknown>) => refusedConfig(clusterYaml(edits));

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const kubernetes = (nodeUrl: string) => ({
  version: 'v1.35.0',
  server: { url: 'https://dl.k8s.io/v1.35.0/kubernetes-server-linux-amd64.tar.gz', checksum: `sha256:${'a'.repeat(64)}` },
  node: { url: nodeUrl, checksum: `sha256:${sha256('node archive')}` },
});

describe('versions.*.url: one artifacts.tsv row per archive, whatever the URL', () => {
  it.each([
    ['a tab', 'https://dl.k8s.io/v1.35.0/kubernetes-node-linux-amd64.tar.gz\tsha256:0\t-\t/etc/cron.d/evil', /contains a tab \(U\+0009\) at position \d+/],
    [
      'a newline',
      'https://dl.k8s.io/v1.35.0/kubernetes-node-linux-amd64.tar.gz\nhttps://evil.invalid/x\tsha256:0\t-\t/root/.ssh/authorized_keys',
      /contains a line break \(U\+000A\)/,
    ],
    ['a carriage return', 'https://dl.k8s.io/v1.35.0/kubernetes-node-linux-amd64.tar.gz\r', /contains a carriage return/],
    ['a space', 'https://dl.k8s.io/v1.35.0/kubernetes node.tar.gz', /has the wrong form/],
    ['a query', 'https://dl.k8s.io/v1.35.0/kubernetes-node-linux-amd64.tar.gz?x=1', /has the wrong form/],
    ['no file name', 'https://dl.k8s.io/v1.35.0/', /has the wrong form/],
    ['a dot-name', 'https://dl.k8s.io/v1.35.0/..', /has the wrong form/],
  ])('%s is refused, naming the key', (_, url, problem) => {
    const issue = refusal({ 'versions.kubernetes': kubernetes(url) }).issues[0]!;
    expect(issue.path).toBe('versions.kubernetes.node.url');
    expect(issue.problem).toMatch(problem);
    expect(issue.fix).toMatch(/https:\/\/host\/path\/<archive file name>/);
  });

  it("the node's own install-binaries reads each admitted URL whole, odd characters and all", async () => {
    // Every character the pattern admits that a shell or a TSV reader could trip on.
    const nodeName = "node+$HOME'(1);x=y,z@a:b!c&d*e~f%41.tar.gz";
    const nodeUrl = `https://mirror.example.invalid:8443/it's/~k8s/v1.35.0/${nodeName}`;
    const dockerdName = 'cri-dockerd-0.3.24.amd64.tgz';
    const yaml = clusterYaml({
      'versions.kubernetes': kubernetes(nodeUrl),
      'versions.criDockerd': {
        version: '0.3.24',
        archive: { url: `https://[2001:db8::1]/v0.3.24/${dockerdName}`, checksum: `sha256:${sha256('dockerd archive')}` },
      },
    });
    const dir = join(scratch, 'tsv');
    mkdirSync(join(dir, 'binaries'), { recursive: true });
    mkdirSync(join(dir, 'root'));
    writeFileSync(join(dir, 'cluster.yaml'), yaml);
    writeFileSync(join(dir, 'binaries', nodeName), 'node archive');
    writeFileSync(join(dir, 'binaries', dockerdName), 'dockerd archive');
    await runRender({ configFile: join(dir, 'cluster.yaml'), outDir: join(dir, 'out'), stateDir: join(dir, 'state') });
    const artifacts = join(dir, 'out', 'minion1', PATHS.artifacts);
    const rows = readFileSync(artifacts, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(rows.map((r) => r.split('\t').length)).toEqual(rows.map(() => 4));
    // --fetch-only: every archive found by its name in the binaries dir, verified, cached.
    const r = await runScript(
      'install-binaries',
      ['--root', join(dir, 'root'), '--artifacts', artifacts, '--binaries', join(dir, 'binaries'), '--fetch-only'],
      {},
    );
    expect(r.code, r.stderr).toBe(0);
    const cache = join(dir, 'root', PATHS.archiveCache);
    expect(readdirSync(cache).sort()).toEqual([`sha256-${sha256('dockerd archive')}`, `sha256-${sha256('node archive')}`].sort());
    expect(readdirSync(join(cache, `sha256-${sha256('node archive')}`))).toEqual([nodeName]);
    expect(readdirSync(join(dir, 'root')).sort()).toEqual(['var']);
  });
});

describe('nodes[].ssh.host: a host, never an option', () => {
  it.each(['-oProxyCommand=touch /tmp/pwned', '-oProxyCommand=id', 'node;id', 'root@node', 'a b', 'node\n'])('%j is refused', (host) => {
    const issue = refusal({ 'nodes.1.ssh': { host } }).issues[0]!;
    expect(issue.path).toBe('nodes[1].ssh.host');
  });

  it('ssh.user is a user name', () => {
    expect(refusal({ 'nodes.1.ssh': { host: 'minion1.example', user: '-oProxyCommand=id' } }).issues[0]!.problem).toMatch(/starts with "-"/);
  });

  const node = (host: string): OpenSshNode => ({
    name: 'minion1',
    host,
    port: 2222,
    // root: the remote command is then a single word ("true"), which OpenSSH would also
    // accept as a destination if it ever stood where the destination goes.
    user: 'root',
    identityFiles: [],
    knownHosts: '/dev/null',
    hostKeyAlgorithms: hostKeyAlgorithms('ssh-ed25519'),
    controlPath: join(scratch, 'minion1.ctl'),
  });
  /** What OpenSSH makes of the argv the check runs (`ssh -G`: resolve, print, connect to nothing). */
  const resolved = (host: string) => {
    const argv = sshArgv(node(host), ['true']);
    const r = spawnSync(argv[0]!, ['-G', ...argv.slice(1)], { encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  it('even past the schema, OpenSSH takes the host as the destination, not as an option', () => {
    const hostile = resolved('-oProxyCommand=touch /tmp/kube-ipsec-secfmt-pwned');
    expect(hostile.out).not.toMatch(/^proxycommand /m);
    expect(`${hostile.out}${hostile.err}`).not.toContain('kube-ipsec-secfmt-pwned\n');
    for (const host of ['192.168.10.21', 'minion1.example', 'fe80::1']) {
      const ok = resolved(host);
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(new RegExp(`^hostname ${host.replace(/\./g, '\\.')}$`, 'm'));
      expect(ok.out).toMatch(/^port 2222$/m);
      expect(ok.out).toMatch(/^user root$/m);
    }
  });
});

describe('vagrant.libvirt.cpuModel: a model name, and text in the domain XML', () => {
  const injected =
    "qemu64</model><feature policy='disable' name='aes'/></cpu><devices><filesystem type='mount'><source dir='/'/><target dir='host'/></filesystem></devices><cpu><model>x";

  it.each([injected, 'qemu64 ', 'a&b', '-cpu'])('%j is refused', (cpuModel) => {
    expect(refusal({ 'vagrant.libvirt': { cpuMode: 'custom', cpuModel } }).issues[0]!.path).toBe('vagrant.libvirt.cpuModel');
  });

  /**
   * The <cpu> element as vagrant-libvirt writes it: the block of its own domain.xml.erb, fed
   * what the Vagrantfile hands it (KubeIpsec::Libvirt.accel), parsed by REXML.
   */
  function domainCpu(cpuModel: string): { model: string; elements: string[] } {
    const program = `
      require "erb"; require "json"; require "rexml/document"
      require ${JSON.stringify(join(repoRoot, 'vagrant', 'kube_ipsec.rb'))}
      accel = KubeIpsec::Libvirt.accel(kvm: { ok: false, why: "test" }, cpu_mode: "custom", cpu_model: STDIN.read)
      template = File.join(Gem::Specification.find_by_name("vagrant-libvirt").gem_dir, "lib/vagrant-libvirt/templates/domain.xml.erb")
      cpu = File.read(template)[/^<%- unless @cpu_mode.nil\\? -%>\\n.*?^<%- end -%>\\n/m] or abort "no <cpu> block in #{template}"
      @cpu_mode, @cpu_model, @cpu_fallback, @cpu_features, @cpu_topology = accel[:cpu_mode], accel[:cpu_model], "allow", [], {}
      doc = REXML::Document.new("<domain>" + ERB.new(cpu, trim_mode: "-").result(binding) + "</domain>")
      puts JSON.generate(model: REXML::XPath.first(doc, "/domain/cpu/model").text, elements: REXML::XPath.match(doc, "//*").map(&:name))
    `;
    const r = spawnSync('ruby', ['-e', program], { input: cpuModel, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ruby failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { model: string; elements: string[] };
  }

  it('whatever reaches the Vagrantfile stays the text of <model>: no element is added to the VM', () => {
    expect(domainCpu('qemu64')).toEqual({ model: 'qemu64', elements: ['domain', 'cpu', 'model'] });
    expect(domainCpu(injected)).toEqual({ model: injected, elements: ['domain', 'cpu', 'model'] });
  });
});

describe('network.bridge: a bridge of its own, not a device the node has', () => {
  it.each([
    ['eth1', /network card's name.*underlay/],
    ['enp0s8', /network card's name/],
    ['ens6', /network card's name/],
    ['lo', /loopback/],
    ['ipsec0', /userspace ESP device/],
    ['veth0a1b2c3d4e5', /veth/],
    ['docker0', /container runtimes/],
    ['ip_vti0', /tunnel module/],
    ['all', /reserves/],
    ['-x', /not an interface name/],
    ['br0;reboot', /not an interface name/],
    ['a-bridge-name-16', /not an interface name/],
  ])('%s is refused', (bridge, problem) => {
    const issue = refusal({ 'network.bridge': bridge }).issues[0]!;
    expect(issue.path).toBe('network.bridge');
    expect(issue.problem).toMatch(problem);
    expect(issue.fix).toContain('ipsec-br01');
  });

  const lab = netnsLab('secbr');
  afterAll(() => lab.cleanup());

  it('every name the schema admits is one the kernel creates as is', async () => {
    const ns = await lab.add('node');
    for (const bridge of ['ipsec-br01', 'pods', 'B.r_i-d.g.e_15c', 'k8s_pods-0']) {
      expect(parseCluster(clusterYaml({ 'network.bridge': bridge })).network.bridge).toBe(bridge);
      await lab.exec(ns, ['ip', 'link', 'add', 'name', bridge, 'type', 'bridge']);
      expect((await lab.exec(ns, ['ip', '-o', 'link', 'show', 'dev', bridge])).stdout).toContain(`: ${bridge}: `);
    }
  });
});
