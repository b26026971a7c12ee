// Issue 18: moving the IKE identities to their own CA must not cut the mesh while nodes are
// re-provisioned one at a time. Real strongSwan, one namespace per node on a shared bridge:
// a node still running what main rendered from one CA (test/fixtures/legacy-one-ca)
// authenticates nodes already re-provisioned from the migrated state, and the other way
// round; after `--retire ike-ca`, a node with the final configuration still authenticates
// nodes in the transition — and, as the control that shows the order matters, not a node
// that was never re-provisioned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installView, inNode, openView, removeView, type NodeView } from '../../src/lab/node-view.ts';
import { ipsec, startStrongswan, stopStrongswan } from '../../src/lab/strongswan.ts';
import { ensurePki } from '../../src/pki/issue.ts';
import { directoryStore } from '../../src/pki/store.ts';
import { PATHS } from '../../src/plan/paths.ts';
import type { Plan } from '../../src/plan/plan.ts';
import type { RenderedFile } from '../../src/render/files.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { processRunner, waitFor } from '../../src/run.ts';
import { FIXED_NOW, plan as makePlan } from '../helpers/cluster.ts';
import { copyLegacyState, legacyIpsecFiles } from '../helpers/legacy-state.ts';
import { netnsLab } from '../helpers/netns.ts';

const lab = netnsLab('ikemig');
const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-ikemig-'));
// As the fixture was rendered: ESP in userspace (no kernel ESP on the test machines).
const plan: Plan = makePlan({ 'ipsec.espMode': 'userspace' });
const views = new Map<string, NodeView>();

/** The files strongSwan reads: what changes between the stages. */
const strongswanFiles = (files: RenderedFile[]) =>
  files.filter((f) => [PATHS.ipsecConf, PATHS.ipsecSecrets, PATHS.strongswanConf].includes(f.path as never) || f.path.startsWith('/etc/ipsec.d/'));

async function render(retire: boolean): Promise<Map<string, RenderedFile[]>> {
  const { materials } = await ensurePki(plan, directoryStore(join(scratch, 'state')), {
    now: FIXED_NOW,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    ...(retire && { retire: ['ike-ca' as const] }),
  });
  return new Map([...renderCluster(plan, materials, loadTemplates()).nodes].map(([n, files]) => [n, strongswanFiles(files)]));
}

/**
 * One moment of the migration: each node with the configuration given. Every charon starts
 * afresh, so each pair authenticates with exactly these configurations (as after a reboot
 * or a re-authentication), not on an IKE_SA left from the stage before.
 */
async function stage(configs: Record<string, RenderedFile[]>): Promise<void> {
  await Promise.all([...views.values()].map((v) => stopStrongswan(processRunner, v).catch(() => {})));
  for (const [node, files] of Object.entries(configs)) {
    const view = views.get(node)!;
    const run = (argv: string[], input?: string) => processRunner.run(inNode(view, argv), { ...(input !== undefined && { input }) });
    // Written through the node's own view (its tree is an overlay's lower layer, not to be changed).
    await run(['sh', '-c', 'rm -rf /etc/ipsec.d && mkdir -p /etc/ipsec.d/cacerts /etc/ipsec.d/certs /etc/ipsec.d/private']);
    for (const f of files) await run(['sh', '-c', 'cat > "$1" && chmod "$2" "$1"', 'sh', f.path, f.mode.toString(8)], f.content);
  }
  // Answering ends first: a node starts once every peer it initiates to (the names sorting
  // after its own) has its credentials and connections loaded. A charon that is still
  // loading answers an IKE_SA_INIT without a matching configuration, which its peer takes
  // as final (the nodes' IKE gate prevents that; this test starts charon without it).
  for (const node of Object.keys(configs).sort().reverse()) for (const pid of await startStrongswan(processRunner, views.get(node)!, 60_000)) lab.track(pid);
}

/** Whether `a`'s IKE_SA with `b` is established (seen from `a`). */
async function established(a: string, b: string): Promise<boolean> {
  const status = (await ipsec(processRunner, views.get(a)!, ['statusall'], true)).stdout;
  return new RegExp(`^\\s*${a}-${b}\\[\\d+\\]: ESTABLISHED`, 'm').test(status);
}

async function allPairsUp(nodes: string[], timeoutMs = 60_000, explain = true): Promise<string[]> {
  const pairs = nodes.flatMap((a, i) => nodes.slice(i + 1).map((b) => [a, b] as const));
  await waitFor(async () => (await Promise.all(pairs.map(([a, b]) => established(a, b)))).every(Boolean), timeoutMs, 250);
  const down: string[] = [];
  for (const [a, b] of pairs) if (!(await established(a, b)) || !(await established(b, a))) down.push(`${a}–${b}`);
  // What each end said, for a pair that did not come up.
  for (const pair of explain ? down : []) {
    for (const node of pair.split('–')) console.error(`${node}:\n${(await ipsec(processRunner, views.get(node)!, ['statusall'], true)).stdout}`);
  }
  return down;
}

beforeAll(async () => {
  copyLegacyState(join(scratch, 'state'));
  const wire = await lab.add('wire');
  await lab.exec(wire, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  await lab.exec(wire, ['ip', 'link', 'set', 'br0', 'up']);
  for (const n of plan.nodes) {
    const ns = await lab.add(n.name);
    await lab.exec(wire, ['ip', 'link', 'add', `v-${n.name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await lab.exec(wire, ['ip', 'link', 'set', `v-${n.name}`, 'master', 'br0', 'up']);
    await lab.exec(ns, ['ip', 'addr', 'add', `${n.ip}/24`, 'dev', 'eth0']);
    await lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
    const view: NodeView = { ns, dir: join(scratch, n.name) };
    installView(view, []);
    lab.track(await openView(view));
    views.set(n.name, view);
  }
}, 120_000);

afterAll(async () => {
  for (const v of views.values()) await stopStrongswan(processRunner, v).catch(() => {});
  await lab.cleanup();
  for (const v of views.values()) removeView(v);
  rmSync(scratch, { recursive: true, force: true });
});

describe('moving the IKE identities to the IKE CA, one node at a time', () => {
  let transition: Map<string, RenderedFile[]>;
  let final: Map<string, RenderedFile[]>;

  it('nodes not yet re-provisioned (one CA) and re-provisioned ones (both CAs) authenticate each other', async () => {
    transition = await render(false);
    // The master and minion3 still run main's configuration; minion1 and minion2 are re-provisioned.
    await stage({
      master: legacyIpsecFiles('master'),
      minion1: transition.get('minion1')!,
      minion2: transition.get('minion2')!,
      minion3: legacyIpsecFiles('minion3'),
    });
    expect(await allPairsUp(['master', 'minion1', 'minion2', 'minion3'])).toEqual([]);
    // minion1 offers its new certificate to minion2 (both trust the IKE CA), its old one to the master.
    const certs = (await ipsec(processRunner, views.get('minion1')!, ['listcerts'])).stdout;
    expect(certs).toMatch(/issuer:\s+"CN=kube-ipsec-ike-ca"/);
    expect(certs).toMatch(/issuer:\s+"CN=kube-ipsec-ca"/);
  }, 180_000);

  it('every node re-provisioned: all pairs up; then --retire ike-ca, and a node with the final configuration still authenticates nodes in the transition', async () => {
    await stage(Object.fromEntries(plan.nodes.map((n) => [n.name, transition.get(n.name)!])));
    expect(await allPairsUp(['master', 'minion1', 'minion2', 'minion3'])).toEqual([]);
    final = await render(true);
    expect(final.get('master')!.some((f) => f.path === PATHS.ipsecPreviousCaCert)).toBe(false);
    // The master is re-provisioned after the retire; the minions not yet.
    await stage({
      master: final.get('master')!,
      minion1: transition.get('minion1')!,
      minion2: transition.get('minion2')!,
      minion3: transition.get('minion3')!,
    });
    expect(await allPairsUp(['master', 'minion1', 'minion2', 'minion3'])).toEqual([]);
    const cacerts = (await ipsec(processRunner, views.get('master')!, ['listcacerts'])).stdout;
    expect(cacerts).toContain('CN=kube-ipsec-ike-ca');
    expect(cacerts).not.toMatch(/"CN=kube-ipsec-ca"/);
  }, 180_000);

  it('control: retiring before a node was re-provisioned cuts that node off (the order matters)', async () => {
    await stage({
      master: final.get('master')!,
      minion1: transition.get('minion1')!,
      minion2: transition.get('minion2')!,
      minion3: legacyIpsecFiles('minion3'),
    });
    expect(await allPairsUp(['master', 'minion3'], 20_000, false)).toEqual(['master–minion3']);
    // …while the transition nodes still reach the one-CA node.
    expect(await allPairsUp(['minion1', 'minion3'])).toEqual([]);
  }, 180_000);
});
