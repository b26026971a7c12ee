// Real strongSwan loads every node's rendered ipsec.conf, ipsec.secrets and strongswan.conf
// (one namespace per node with its own /etc and /run; the peers are not there, so nothing
// leaves the namespace). The tunnels themselves are the lab's job.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootNode } from '../../src/lab/boot.ts';
import { installView, openView, removeView, type NodeView } from '../../src/lab/node-view.ts';
import { processRunner } from '../../src/run.ts';
import { ipsec, startStrongswan, stopStrongswan } from '../../src/lab/strongswan.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { issuePki, plan as makePlan } from '../helpers/cluster.ts';
import { netnsLab } from '../helpers/netns.ts';

const lab = netnsLab('swcfg');
const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-swcfg-'));
const views: NodeView[] = [];
afterAll(async () => {
  for (const v of views) await stopStrongswan(processRunner, v).catch(() => {});
  for (const v of views) removeView(v);
  await lab.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

describe.each([
  ['pubkey', {}],
  ['psk', { 'ipsec.auth': 'psk' }],
])('strongSwan loads the rendered configuration (auth %s)', (auth, edits) => {
  it.each(['master', 'minion2'])('%s', async (nodeName) => {
    const plan = makePlan(edits);
    const cluster = renderCluster(plan, await issuePki(plan), loadTemplates());
    const node = plan.nodes.find((n) => n.name === nodeName)!;
    const ns = await lab.add(`${auth}-${nodeName}`);
    // The node's address on a port-less bridge (no dummy module here): routable, leads nowhere.
    await lab.exec(ns, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
    await lab.exec(ns, ['ip', 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
    await lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
    const view: NodeView = { ns, dir: join(scratch, ns) };
    views.push(view);
    installView(view, cluster.nodes.get(nodeName)!);
    lab.track(await openView(view));
    // As at boot: the node network (its nftables table holds strongSwan's IKE gate) first.
    await bootNode(processRunner, view);
    for (const pid of await startStrongswan(processRunner, view)) lab.track(pid);

    const status = (await ipsec(processRunner, view, ['statusall'])).stdout;
    for (const peer of node.peers) {
      expect(status, status).toContain(`${peer.conn}:  ${node.ip}...${peer.ip}  IKEv2`);
      expect(status).toContain(`${peer.conn}:   child:  ${node.podSubnet} === ${peer.podSubnet} TUNNEL`);
    }
    if (auth === 'pubkey') {
      expect(status).toContain(`${node.peers[0]!.conn}:   local:  [${node.name}] uses public key authentication`);
      const certs = (await ipsec(processRunner, view, ['listcerts'])).stdout;
      expect(certs).toMatch(new RegExp(`subject:\\s+"O=kube-ipsec, CN=${node.name}"[\\s\\S]*?pubkey:\\s+ECDSA 256 bits, has private key`));
      const cacerts = (await ipsec(processRunner, view, ['listcacerts'])).stdout;
      expect(cacerts).toContain('CN=kube-ipsec-ike-ca');
      expect(cacerts).not.toMatch(/CN=kube-ipsec-ca\b/);
    } else {
      expect(status).toContain(`${node.peers[0]!.conn}:   local:  [${node.name}] uses pre-shared key authentication`);
      // `ipsec rereadsecrets` reloads ipsec.secrets; a parse error there is reported on stderr.
      const reread = await ipsec(processRunner, view, ['rereadsecrets']);
      expect(reread.stderr + reread.stdout).not.toMatch(/error|failed|invalid/i);
    }
    await stopStrongswan(processRunner, view);
  });
});
