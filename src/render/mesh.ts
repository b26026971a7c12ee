// Files every mesh node gets, master included: the IPsec full mesh (strongSwan) and the
// node network it relies on (pod bridge, fail-closed route, forwarding, masquerade, and the
// nftables table that keeps every pod packet inside ESP).
import { ipsecCertPath, ipsecKeyPath, ipsecPreviousCertPath, ipsecPreviousKeyPath, PATHS, UNITS } from '../plan/paths.ts';
import { masqueradeMark, type PlannedNode } from '../plan/plan.ts';
import { caSpec, IKE_CA_ID, ipsecCertId, pskId } from '../pki/specs.ts';
import { baseView, render, type RenderContext } from './context.ts';
import { EXECUTABLE, file, secret, type RenderedFile } from './files.ts';

/** How long strongSwan's start waits for charon to load its connections before letting IKE in anyway. */
const IKE_GATE_TIMEOUT_S = 60;

export function meshFiles(ctx: RenderContext, node: PlannedNode): RenderedFile[] {
  const { plan, pki } = ctx;
  const view = baseView(ctx, node);
  const pubkey = plan.ipsec.auth === 'pubkey';
  const ikeCa = pki.cas[IKE_CA_ID];
  const previous = pki.ikeTransition;
  const previousCred = previous?.certs[ipsecCertId(node.name)];
  const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);
  const ipsecView = {
    ...view,
    pubkey,
    // The current certificate first: a peer's certificate request picks between the two
    // (strongSwan: "chooses the certificate based on the received certificate requests").
    certFiles: [base(ipsecCertPath(node.name)), ...(previousCred ? [base(ipsecPreviousCertPath(node.name))] : [])],
    keyFiles: [base(ipsecKeyPath(node.name)), ...(previousCred ? [base(ipsecPreviousKeyPath(node.name))] : [])],
    keyType: plan.pki.keyAlgorithm === 'rsa-2048' ? 'RSA' : 'ECDSA',
    caSubject: pubkey ? `CN=${caSpec(plan, IKE_CA_ID)!.commonName}` : '',
    ikeTransition: previous !== undefined,
    psks: node.peers.map((p) => ({ local: node.ipsecId, remote: p.ipsecId, secret: pki.psks[pskId(node.name, p.name)] })),
    userspaceEsp: plan.ipsec.espMode === 'userspace',
  };
  const files = [
    file(PATHS.ipsecConf, render(ctx, PATHS.ipsecConf, ipsecView)),
    secret(PATHS.ipsecSecrets, render(ctx, PATHS.ipsecSecrets, ipsecView)),
    file(PATHS.strongswanConf, render(ctx, PATHS.strongswanConf, ipsecView)),
    unitDropIn(ctx, UNITS.strongswan, '10-kube-ipsec.conf', view),
    file(PATHS.ikeGateScript, render(ctx, PATHS.ikeGateScript, { ...view, timeoutSeconds: IKE_GATE_TIMEOUT_S }), EXECUTABLE),
    file(PATHS.nodeNetworkScript, render(ctx, PATHS.nodeNetworkScript, view), EXECUTABLE),
    file(
      PATHS.nodeNetworkRules,
      render(ctx, PATHS.nodeNetworkRules, {
        ...ipsecView,
        localSelectors: node.selectors,
        peerIps: node.peers.map((p) => p.ip),
        masqueradeMark: masqueradeMark(plan.network.masqueradeBit),
      }),
    ),
    unit(ctx, UNITS.nodeNetwork, view),
    file(PATHS.sysctl, render(ctx, PATHS.sysctl, view)),
    file(PATHS.modulesLoad, render(ctx, PATHS.modulesLoad, view)),
  ];
  if (pubkey) {
    const cred = pki.certs[ipsecCertId(node.name)]!;
    files.push(file(PATHS.ipsecCaCert, ikeCa!.cert), file(ipsecCertPath(node.name), cred.cert), secret(ipsecKeyPath(node.name), cred.key));
    if (previous) files.push(file(PATHS.ipsecPreviousCaCert, previous.previousCa));
    if (previousCred) files.push(file(ipsecPreviousCertPath(node.name), previousCred.cert), secret(ipsecPreviousKeyPath(node.name), previousCred.key));
  }
  return files;
}

export function unit(ctx: RenderContext, name: string, view: object): RenderedFile {
  const path = `${PATHS.systemdDir}/${name}`;
  return file(path, render(ctx, path, view));
}

function unitDropIn(ctx: RenderContext, unitName: string, dropIn: string, view: object): RenderedFile {
  const path = `${PATHS.systemdDir}/${unitName}.d/${dropIn}`;
  return file(path, render(ctx, path, view));
}
