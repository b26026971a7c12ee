import { describe, expect, it } from 'vitest';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import { affectedUnits, restartRules } from '../../src/render/restarts.ts';
import type { RenderedFile } from '../../src/render/files.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan as defaultPlan } from '../helpers/cluster.ts';

// The default cluster.yaml: master and minion1-3.
const plan = defaultPlan();
const cluster = renderCluster(plan, placeholderPki(plan), loadTemplates());
const node = (name: string) => plan.nodes.find((n) => n.name === name)!;
const files = (name: string) => cluster.nodes.get(name)!;
const content = (name: string, path: string) => files(name).find((f) => f.path === path)!.content;
const rules = (name: string) => restartRules(plan, node(name), files(name));
const rulesOf = (name: string) => parseRestartMap(content(name, PATHS.restartMap));
const affected = (name: string, ...changed: string[]) => affectedUnits(rulesOf(name), new Set(changed)).map((a) => `${a.action} ${a.unit}`);

/** restart.tsv as provision/apply reads it. */
function parseRestartMap(text: string) {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [unit, action, paths] = l.split('\t');
      return { unit: unit!, action: action as 'restart' | 'reload', paths: paths!.split(' ') };
    });
}

describe('restart map', () => {
  it('is rendered into every node tree and round-trips through restart.tsv', () => {
    for (const n of plan.nodes) expect(rulesOf(n.name)).toEqual(rules(n.name));
  });

  it('derives kubelet dependencies from what its unit and config name, binaries included', () => {
    const kubelet = rules('minion1').find((r) => r.unit === UNITS.kubelet)!;
    expect(kubelet.paths).toEqual(
      [
        PATHS.kubeletKubeconfig,
        PATHS.caCert,
        `${PATHS.systemdDir}/${UNITS.kubelet}`,
        '/usr/local/bin/kubelet',
        PATHS.kubeletResolvConfScript,
        PATHS.kubeletConfig,
        PATHS.kubeletServingCert,
        PATHS.kubeletServingKey,
      ].sort(),
    );
  });

  it('maps each kind of file to the unit the issue names', () => {
    expect(affected('minion1', PATHS.ipsecConf)).toEqual([`reload ${UNITS.strongswan}`]);
    expect(affected('minion1', PATHS.ipsecSecrets, '/etc/ipsec.d/private/minion1.key')).toEqual([`reload ${UNITS.strongswan}`]);
    expect(affected('minion1', PATHS.strongswanConf, PATHS.ipsecConf)).toEqual([`restart ${UNITS.strongswan}`]);
    expect(affected('minion1', PATHS.kubeletConfig)).toEqual([`restart ${UNITS.kubelet}`]);
    expect(affected('minion1', PATHS.kubeletKubeconfig)).toEqual([`restart ${UNITS.kubelet}`]);
    expect(affected('minion1', PATHS.nodeNetworkScript)).toEqual([`restart ${UNITS.nodeNetwork}`]);
    expect(affected('minion1', PATHS.cniConflist, PATHS.cniPlugin, PATHS.nodeEnv, PATHS.artifacts)).toEqual([]);
    expect(affected('minion1', PATHS.sysctl)).toEqual([`restart ${UNITS.sysctl}`]);
    // The nftables table is replaced by a reload: a restart of the node network would restart strongSwan (Requires=).
    expect(affected('minion1', PATHS.nodeNetworkRules)).toEqual([`reload ${UNITS.nodeNetwork}`]);
    expect(affected('minion1', PATHS.ikeGateScript)).toEqual([`restart ${UNITS.strongswan}`]);
  });

  it("gives a file that a unit reloads for to its reload rule alone, even where the unit's own files name it", () => {
    // The IKE gate reads /etc/ipsec.conf; the node-network script loads the nftables table.
    expect(content('minion1', PATHS.ikeGateScript)).toContain(PATHS.ipsecConf);
    expect(content('minion1', PATHS.nodeNetworkScript)).toContain(PATHS.nodeNetworkRules);
    for (const r of rules('minion1').filter((x) => x.action === 'restart')) {
      expect(r.paths).not.toContain(PATHS.ipsecConf);
      expect(r.paths).not.toContain(PATHS.nodeNetworkRules);
    }
  });

  it('adding a node reloads strongSwan on the others and restarts nothing; with nodeEncryption it reloads the guard too', () => {
    const grown = (edits: Record<string, unknown>) => {
      const p = defaultPlan({ ...edits, 'nodes.4': { name: 'minion4', ip: '192.168.10.24' } });
      return renderCluster(p, placeholderPki(p), loadTemplates()).nodes.get('minion1')!;
    };
    const changed = (before: RenderedFile[], after: RenderedFile[]) =>
      after.filter((f) => before.find((b) => b.path === f.path)?.content !== f.content).map((f) => f.path);
    const fromTo = (edits: Record<string, unknown>) => {
      const p = defaultPlan(edits);
      const before = renderCluster(p, placeholderPki(p), loadTemplates()).nodes.get('minion1')!;
      const after = grown(edits);
      const rulesAfter = parseRestartMap(after.find((f) => f.path === PATHS.restartMap)!.content);
      return affectedUnits(rulesAfter, new Set(changed(before, after).filter((x) => x !== PATHS.restartMap))).map((a) => `${a.action} ${a.unit}`);
    };
    expect(fromTo({})).toEqual([`reload ${UNITS.strongswan}`]);
    expect(fromTo({ 'ipsec.nodeEncryption': true })).toEqual([`reload ${UNITS.nodeNetwork}`, `reload ${UNITS.strongswan}`]);
  });

  it('orders actions by bring-up order whatever order the changes come in', () => {
    const all = files('minion1')
      .map((f) => f.path)
      .reverse();
    expect(affected('minion1', ...all)).toEqual([
      `restart ${UNITS.modulesLoad}`,
      `restart ${UNITS.sysctl}`,
      `restart ${UNITS.nodeNetwork}`,
      `restart ${UNITS.strongswan}`,
      `restart ${UNITS.docker}`,
      `restart ${UNITS.criDockerSocket}`,
      `restart ${UNITS.criDockerService}`,
      `restart ${UNITS.kubelet}`,
      `restart ${UNITS.kubeProxy}`,
    ]);
    expect(affected('master', ...files('master').map((f) => f.path)).slice(3)).toEqual([
      `restart ${UNITS.strongswan}`,
      `restart ${UNITS.etcd}`,
      `restart ${UNITS.apiserver}`,
      `restart ${UNITS.controllerManager}`,
      `restart ${UNITS.scheduler}`,
      `restart ${UNITS.addons}`,
    ]);
  });

  it('re-applies the add-ons when a rendered manifest changes, and restarts nothing else', () => {
    expect(affected('master', `${PATHS.addonsDir}/20-coredns.yaml`)).toEqual([`restart ${UNITS.addons}`]);
    expect(affected('master', `${PATHS.addonsDir}/10-rbac.yaml`)).toEqual([`restart ${UNITS.addons}`]);
    // the apiserver's kubelet-client certificate does not concern the add-ons
    expect(affected('master', PATHS.apiserverKubeletClientCert)).toEqual([`restart ${UNITS.apiserver}`]);
  });

  it('restarts every control-plane component that reads the CA, and only those', () => {
    expect(affected('master', PATHS.caKey)).toEqual([`restart ${UNITS.controllerManager}`]);
    expect(affected('master', PATHS.caCert)).toEqual([`restart ${UNITS.apiserver}`, `restart ${UNITS.controllerManager}`]);
  });

  it('names only files of the node and the binaries it installs', () => {
    for (const n of plan.nodes) {
      const known = new Set(files(n.name).map((f) => f.path));
      for (const r of rules(n.name)) for (const p of r.paths) expect(known.has(p) || p.startsWith(PATHS.binDir + '/'), `${n.name}: ${p}`).toBe(true);
    }
  });
});

describe('files.tsv', () => {
  const manifest = (name: string) =>
    content(name, PATHS.filesManifest)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('\t') as [string, string]);

  it('lists every file of the tree with its mode, itself included', () => {
    for (const n of plan.nodes) {
      const expected = files(n.name).map((f: RenderedFile) => [f.mode.toString(8).padStart(4, '0'), f.path]);
      expect(manifest(n.name)).toEqual(expected);
    }
    expect(manifest('minion1')).toContainEqual(['0600', PATHS.kubeletServingKey]);
    expect(manifest('minion1')).toContainEqual(['0644', PATHS.filesManifest]);
  });

  it('names the CNI plugin in node.env only where pods run', () => {
    expect(content('minion2', PATHS.nodeEnv)).toContain(`CNI_PLUGIN=${PATHS.cniPlugin}\n`);
    expect(content('master', PATHS.nodeEnv)).toContain('CNI_PLUGIN=\n');
  });
});
