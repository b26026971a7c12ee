// Finding: `ipsec.esp: null-md5` and `ipsec.ike: 3des-md5-modp768` were accepted silently, and
// ESP-NULL passed the node's guard (it lets out anything inside an IPsec transform), so pod
// traffic would have travelled in clear inside ESP. Now both keys take only strong algorithms,
// in strongSwan's grammar, and nothing strongSwan would silently change; the real strongSwan
// the nodes run shows that every allowed keyword is one it knows, and that it would itself
// have taken ESP-NULL.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { parseCluster } from '../../src/config/load.ts';
import { allowedKeywords, proposalPattern } from '../../src/config/proposals.ts';
import { bootNode } from '../../src/lab/boot.ts';
import { installFile, installView, openView, removeView, runDir, type NodeView } from '../../src/lab/node-view.ts';
import { ipsec, startStrongswan, stopStrongswan } from '../../src/lab/strongswan.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { file } from '../../src/render/files.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { processRunner } from '../../src/run.ts';
import { clusterYaml, issuePki, refusedConfig } from '../helpers/cluster.ts';
import { netnsLab } from '../helpers/netns.ts';

const refusal = (edits: Record<string, unknown>) => refusedConfig(clusterYaml(edits));

// Every ESP-NULL spelling strongSwan knows, and each weak algorithm of its Security
// Recommendations, in proposals that are otherwise well-formed.
const refused: [key: 'ike' | 'esp', value: string, keyword: string][] = [
  ['esp', 'null-md5!', 'null'],
  ['esp', 'null-sha256!', 'null'],
  ['esp', 'null-sha256-ecp256!', 'null'],
  ['esp', 'aes128gcm16-ecp256,null-sha256!', 'null'],
  ['esp', 'aes128gmac!', 'aes128gmac'],
  ['esp', 'aes256gmac-ecp256!', 'aes256gmac'],
  ['ike', '3des-md5-modp768!', '3des'],
  ['ike', 'aes128-sha256-modp768!', 'modp768'],
  ['ike', 'aes128-sha256-modp1024!', 'modp1024'],
  ['ike', 'aes128-sha256-modp1536!', 'modp1536'],
  ['ike', 'aes128-sha256-modp2048s256!', 'modp2048s256'],
  ['ike', 'aes128-sha1-ecp256!', 'sha1'],
  ['ike', 'aes128gcm16-prfmd5-ecp256!', 'prfmd5'],
  ['esp', 'des-sha256!', 'des'],
  ['esp', 'blowfish-sha256!', 'blowfish'],
  ['esp', 'cast128-sha256!', 'cast128'],
  ['esp', 'aes128-md5!', 'md5'],
  ['esp', 'aes128gcm8-ecp256!', 'aes128gcm8'],
  ['esp', 'aes128gcm16-modpnull!', 'modpnull'],
  ['esp', 'aes128gcm16-ecp192!', 'ecp192'],
];

describe('weak proposals are refused, naming the key, the keyword and the alternatives', () => {
  it.each(refused)('ipsec.%s: %s', (key, value, keyword) => {
    const err = refusal({ [`ipsec.${key}`]: value });
    expect(err.issues).toHaveLength(1);
    const issue = err.issues[0]!;
    expect(issue.path).toBe(`ipsec.${key}`);
    expect(issue.problem).toContain(`\`${keyword}\``);
    expect(issue.fix).toMatch(/aes128gcm16.*chacha20poly1305.*sha256.*ecp256.*curve25519/);
    expect(err.message).toContain('nothing was written');
  });

  it('the key names no proposal at all that strongSwan would change behind its back', () => {
    const cases: [string, string, RegExp][] = [
      ['esp', 'aes128gcm16-ecp256', /does not end in `!`.*appends its default proposals/],
      ['esp', 'aes128gcm16-ecp256!,aes256-sha256!', /`!` inside the list/],
      ['esp', 'aes128gcm16-aes256-sha256!', /mixes an AEAD .* with a classic cipher/],
      ['esp', 'aes128gcm16-sha256!', /adds sha256 to the AEAD/],
      ['esp', 'aes256-ecp256!', /without an integrity algorithm: encryption without authentication/],
      ['esp', 'aes128gcm16-prfsha256!', /PRF prfsha256, which only IKE uses/],
      ['esp', 'ecp256!', /no encryption algorithm/],
      ['ike', 'aes128gcm16-ecp256!', /has no PRF/],
      ['ike', 'aes128gcm16-prfsha256!', /no key exchange group/],
      ['ike', 'aes128gcm16-prfsha256-ecp256-esn!', /esn, which only ESP uses/],
      ['esp', 'aes128gcm16--ecp256!', /is not a proposal/],
      ['esp', 'AES128GCM16!', /is not a proposal/],
    ];
    for (const [key, value, problem] of cases) {
      const issue = refusal({ [`ipsec.${key}`]: value }).issues[0]!;
      expect(`${issue.path}: ${issue.problem}`, value).toMatch(new RegExp(`^ipsec\\.${key}: .*${problem.source}`));
    }
  });

  it('no combination of an ESP-NULL spelling with anything allowed gets through', () => {
    const nulls = ['null', 'aes128gmac', 'aes192gmac', 'aes256gmac'];
    const extras = ['', '-sha256', '-ecp256', '-sha512-modp3072', '-esn'];
    for (const n of nulls) {
      for (const extra of extras) {
        for (const list of [`${n}${extra}!`, `aes128gcm16-ecp256,${n}${extra}!`, `${n}${extra},aes256-sha256!`]) {
          expect(() => parseCluster(clusterYaml({ 'ipsec.esp': list })), list).toThrow(ConfigError);
          expect(new RegExp(proposalPattern('esp')).test(list), `schema pattern for editors: ${list}`).toBe(false);
        }
      }
    }
  });

  it('strong proposals, and the defaults, are accepted', () => {
    for (const [ike, esp] of [
      ['aes128gcm16-prfsha256-ecp256!', 'aes128gcm16-ecp256!'],
      ['aes256gcm16-prfsha384-ecp384,chacha20poly1305-prfsha256-curve25519!', 'aes256gcm16-chacha20poly1305-ecp384-esn!'],
      ['aes256-sha512-modp4096!', 'aes256ctr-sha384-curve448!'],
    ]) {
      expect(parseCluster(clusterYaml({ 'ipsec.ike': ike, 'ipsec.esp': esp })).ipsec).toMatchObject({ ike, esp });
    }
    expect(parseCluster(clusterYaml({ 'ipsec.ike': undefined, 'ipsec.esp': undefined })).ipsec.esp).toBe('aes128gcm16-ecp256!');
  });

  it('a longer ICV shrinks the pod MTU: ESP packets still fit the underlay', () => {
    const mtu = (esp: string) => planCluster(parseCluster(clusterYaml({ 'ipsec.esp': esp }))).network.podMtu;
    expect(mtu('aes128gcm16-ecp256!')).toBe(1423);
    expect(mtu('aes256-sha256!')).toBe(1423);
    // 20 (IP) + 8 (SPI, seq) + 16 (IV) + 15 (padding) + 2 + 32 (HMAC-SHA-512-256 ICV)
    expect(mtu('aes256-sha512!')).toBe(1500 - 93);
  });
});

// Every allowed keyword in two proposals per key: AEADs, then classic ciphers.
const groups = allowedKeywords('group').join('-');
const ALL_IKE = `${allowedKeywords('aead', 'ike').join('-')}-${allowedKeywords('prf', 'ike').join('-')}-${groups},${allowedKeywords('cipher', 'ike').join('-')}-${allowedKeywords('integrity', 'ike').join('-')}-${allowedKeywords('prf', 'ike').join('-')}-${groups}!`;
const ALL_ESP = `${allowedKeywords('aead').join('-')}-${groups}-esn-noesn,${allowedKeywords('cipher').join('-')}-${allowedKeywords('integrity').join('-')}-${groups}!`;

describe('the strongSwan the nodes run', () => {
  const lab = netnsLab('secprop');
  const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-secprop-'));
  let view: NodeView | undefined;
  afterAll(async () => {
    if (view) {
      await stopStrongswan(processRunner, view).catch(() => {});
      removeView(view);
    }
    await lab.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('knows every allowed keyword, and would itself take ESP-NULL (only the allow-list refuses it)', async () => {
    const plan = planCluster(parseCluster(clusterYaml({ 'ipsec.ike': ALL_IKE, 'ipsec.esp': ALL_ESP })));
    const cluster = renderCluster(plan, await issuePki(plan), loadTemplates());
    const node = plan.nodes.find((n) => n.name === 'minion1')!;
    const ns = await lab.add('minion1');
    await lab.exec(ns, ['ip', 'link', 'add', 'eth0', 'type', 'bridge']);
    await lab.exec(ns, ['ip', 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
    await lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
    view = { ns, dir: join(scratch, ns) };
    const files = cluster.nodes.get('minion1')!;
    installView(view, files);
    expect(readFileSync(join(view.dir, 'tree', PATHS.ipsecConf), 'utf8')).toContain(`esp=${ALL_ESP}\n`);
    // charon's log in the node's /run; and two conns of the test's own: a keyword strongSwan
    // does not know (the log must say so, or the check below could not see anything), and
    // ESP-NULL, which strongSwan loads without a word.
    installFile(
      view,
      file(
        '/etc/strongswan.d/zz-secprop-log.conf',
        'charon {\n  filelog {\n    secprop {\n      path = /run/charon-secprop.log\n      default = 1\n      flush_line = yes\n    }\n  }\n}\n',
      ),
    );
    // (included, so that the IKE gate, which waits for the conns of ipsec.conf itself, does
    // not wait for the one that cannot load)
    const ipsecConf = files.find((f) => f.path === PATHS.ipsecConf)!;
    installFile(view, { ...ipsecConf, content: `${ipsecConf.content}\ninclude /etc/ipsec.d/secprop.conf\n` });
    installFile(
      view,
      file(
        '/etc/ipsec.d/secprop.conf',
        'conn secprop-unknown\n    right=192.0.2.1\n    esp=bogus0-ecp256!\n    auto=add\n\nconn secprop-null\n    right=192.0.2.2\n    esp=null-sha256!\n    auto=add\n',
      ),
    );
    lab.track(await openView(view));
    await bootNode(processRunner, view);
    for (const pid of await startStrongswan(processRunner, view)) lab.track(pid);

    const log = readFileSync(join(runDir(view), 'charon-secprop.log'), 'utf8');
    // The test's unknown keyword is reported, and nothing else is.
    expect([...log.matchAll(/algorithm '(\S+)' not recognized/g)].map((m) => m[1])).toEqual(['bogus0']);
    expect([...log.matchAll(/skipped invalid proposal string: (\S+)/g)].map((m) => m[1])).toEqual(['bogus0-ecp256']);
    for (const peer of node.peers) expect(log).toContain(`added configuration '${peer.conn}'`);
    expect(log).toContain("added configuration 'secprop-null'");
    const status = (await ipsec(processRunner, view, ['statusall'])).stdout;
    expect(status).toContain('secprop-null:');
  });
});
