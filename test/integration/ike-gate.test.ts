// strongSwan's IKE gate (the rendered ike-gate script, `close`) in a real kernel: while charon
// loads its connections, a peer's IKE_SA_INIT *request* is dropped (the peer retransmits it),
// and nothing else is: the *responses* to what this node initiates meanwhile get in, and so
// do the other exchanges of established IKE_SAs — on port 500 and behind the non-ESP marker
// on 4500. Datagrams are crafted by hand after RFC 7296 3.1 and RFC 3948 2.2, sent from a peer
// namespace over a veth, and counted by a listener in the node's namespace.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/plan/paths.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan as defaultPlan } from '../helpers/cluster.ts';
import { netnsLab } from '../helpers/netns.ts';

const lab = netnsLab('ikegate');
const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-ike-gate-'));
afterAll(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const IKE_SA_INIT = 34;
const IKE_AUTH = 35;
const INITIATOR = 0x08;
const RESPONSE = 0x20;

/** Hex of an IKE header (28 bytes) of one exchange, with `marker` (4 zero bytes) in front on port 4500. */
function ikeHeader(exchange: number, flags: number, marker: boolean): string {
  const h = Buffer.alloc(28);
  h.fill(0x11, 0, 8); // initiator SPI
  h[16] = 33; // next payload: SA
  h[17] = 0x20; // version 2.0
  h[18] = exchange;
  h[19] = flags;
  h.writeUInt32BE(28, 24);
  return (marker ? '00000000' : '') + h.toString('hex');
}

// Sends each datagram from its own source port; the listener prints the source port of each that arrived.
const SENDER = `import socket,sys
for i,(port,hexdata) in enumerate(a.split(':') for a in sys.argv[2:]):
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('',40000+i)); s.sendto(bytes.fromhex(hexdata),(sys.argv[1],int(port))); s.close()`;
const LISTENER = `import socket,select,sys
socks=[]
for port in (500,4500):
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',port)); socks.append(s)
print('ready',flush=True)
while True:
    r,_,_=select.select(socks,[],[],3)
    if not r: break
    for s in r:
        _,addr=s.recvfrom(2048); print(addr[1],flush=True)`;

let node = '';
let peer = '';
beforeAll(async () => {
  node = await lab.add('node');
  peer = await lab.add('peer');
  await lab.exec(node, ['ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', peer]);
  await lab.exec(node, ['sh', '-c', 'ip addr add 10.99.0.1/24 dev v0 && ip link set v0 up && ip link set lo up']);
  await lab.exec(peer, ['sh', '-c', 'ip addr add 10.99.0.2/24 dev v1 && ip link set v1 up']);
  // The node's own nftables table, as the node network loads it, then the gate closed.
  const p = defaultPlan();
  const files = renderCluster(p, placeholderPki(p), loadTemplates()).nodes.get('minion1')!;
  const content = (path: string) => files.find((f) => f.path === path)!.content;
  writeFileSync(join(dir, 'node-network.nft'), content(PATHS.nodeNetworkRules));
  writeFileSync(join(dir, 'ike-gate'), content(PATHS.ikeGateScript));
  await lab.exec(node, ['nft', '-f', join(dir, 'node-network.nft')]);
  await lab.exec(node, ['bash', join(dir, 'ike-gate'), 'close']);
});

describe('the IKE gate, closed', () => {
  it('drops only IKE_SA_INIT requests, on 500 and 4500; responses and other exchanges get in', async () => {
    const sent = [
      { what: 'IKE_SA_INIT request on 500', port: 500, hex: ikeHeader(IKE_SA_INIT, INITIATOR, false), dropped: true },
      { what: 'IKE_SA_INIT response on 500', port: 500, hex: ikeHeader(IKE_SA_INIT, RESPONSE, false), dropped: false },
      { what: 'IKE_AUTH request on 500', port: 500, hex: ikeHeader(IKE_AUTH, INITIATOR, false), dropped: false },
      { what: 'IKE_SA_INIT request on 4500', port: 4500, hex: ikeHeader(IKE_SA_INIT, INITIATOR, true), dropped: true },
      { what: 'IKE_SA_INIT response on 4500', port: 4500, hex: ikeHeader(IKE_SA_INIT, RESPONSE, true), dropped: false },
      { what: 'IKE_AUTH response on 4500', port: 4500, hex: ikeHeader(IKE_AUTH, RESPONSE, true), dropped: false },
    ];
    const listener = lab.exec(node, ['python3', '-c', LISTENER]);
    // The listener binds within a moment; its 3 s idle timeout ends it after the last datagram.
    await new Promise((r) => setTimeout(r, 500));
    await lab.exec(peer, ['python3', '-c', SENDER, '10.99.0.1', ...sent.map((s) => `${s.port}:${s.hex}`)]);
    const arrived = new Set((await listener).stdout.split('\n').slice(1).filter(Boolean).map(Number));
    const verdicts = sent.map((s, i) => `${s.what}: ${arrived.has(40000 + i) ? 'in' : 'dropped'}`);
    expect(verdicts).toEqual(sent.map((s) => `${s.what}: ${s.dropped ? 'dropped' : 'in'}`));
    const rules = (await lab.exec(node, ['nft', 'list', 'chain', 'ip', 'kube-ipsec', 'ike-gate'])).stdout;
    expect([...rules.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]))).toEqual([1, 1]);
  });
});
