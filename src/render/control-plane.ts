// The master's control plane: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, their certificates and kubeconfigs, in kubeadm's layout. The cluster CA's
// key is placed here and only here (the controller manager signs kubelet CSRs with it); the
// other CAs' keys are not placed anywhere (materials do not even carry them).
import { PATHS, UNITS } from '../plan/paths.ts';
import { CA_ID, IDENTITY, type CaId } from '../pki/specs.ts';
import { auditPolicy, encryptionConfiguration } from './apiserver-files.ts';
import { componentBinary } from './artifacts.ts';
import { baseView, type RenderContext } from './context.ts';
import { file, secret, type RenderedFile } from './files.ts';
import { apiserverFlags, controllerManagerFlags, etcdFlags, schedulerFlags } from './flags.ts';
import { kubeconfig } from './kubeconfig.ts';
import { schedulerConfiguration } from './component-configs.ts';
import { unit } from './mesh.ts';
import { EXECUTABLE, GENERATED } from './files.ts';
import { addonFiles, addonManifests } from './addons.ts';
import { render } from './context.ts';

/** How long the add-on unit waits for the API server's /readyz before it gives up, saying so. */
const ADDONS_READY_TIMEOUT_S = 300;

export function controlPlaneFiles(ctx: RenderContext): RenderedFile[] {
  const { plan, pki } = ctx;
  const master = plan.master;
  const view = baseView(ctx, master);
  const cred = (id: string) => pki.certs[id]!;
  const pair = (certPath: string, keyPath: string, id: string) => [file(certPath, cred(id).cert), secret(keyPath, cred(id).key)];
  const caCert = (id: CaId) => pki.cas[id]!.cert;
  const kc = (path: string, user: string, id: string, server = plan.apiserver.localUrl) =>
    secret(path, kubeconfig({ cluster: plan.cluster.name, server, user, caCert: caCert(CA_ID), credential: cred(id) }));
  const component = (name: string, unitName: string, flags: readonly (readonly [string, string])[]) =>
    unit(ctx, unitName, { ...view, binary: componentBinary(name), flags });

  const admin = kc(PATHS.adminKubeconfig, IDENTITY.admin, 'admin', plan.apiserver.url);
  const manifests = addonManifests(plan);
  const addonsView = {
    ...view,
    kubectl: componentBinary('kubectl'),
    apiserverUrl: plan.apiserver.url,
    manifests: manifests.map((m) => m.path),
    bootstrapManifests: manifests.filter((m) => m.bootstrap).map((m) => m.path),
    readyTimeoutSeconds: ADDONS_READY_TIMEOUT_S,
    startTimeoutSeconds: ADDONS_READY_TIMEOUT_S + 120,
  };
  return [
    file(PATHS.caCert, caCert(CA_ID)),
    secret(PATHS.caKey, pki.cas[CA_ID]!.key!),
    file(PATHS.etcdCaCert, caCert('etcd-ca')),
    ...pair(PATHS.etcdServerCert, PATHS.etcdServerKey, 'etcd-server'),
    ...pair(PATHS.etcdPeerCert, PATHS.etcdPeerKey, 'etcd-peer'),
    ...pair(PATHS.etcdHealthcheckClientCert, PATHS.etcdHealthcheckClientKey, 'etcd-healthcheck-client'),
    ...pair(PATHS.apiserverCert, PATHS.apiserverKey, 'apiserver'),
    ...pair(PATHS.apiserverEtcdClientCert, PATHS.apiserverEtcdClientKey, 'apiserver-etcd-client'),
    ...pair(PATHS.apiserverKubeletClientCert, PATHS.apiserverKubeletClientKey, 'apiserver-kubelet-client'),
    file(PATHS.frontProxyCaCert, caCert('front-proxy-ca')),
    ...pair(PATHS.frontProxyClientCert, PATHS.frontProxyClientKey, 'front-proxy-client'),
    secret(PATHS.serviceAccountKey, pki.serviceAccount.key),
    file(PATHS.serviceAccountPub, pki.serviceAccount.pub),
    secret(PATHS.encryptionConfig, encryptionConfiguration(pki.encryptionKeys, GENERATED)),
    file(PATHS.auditPolicy, auditPolicy(GENERATED)),
    // admin.conf points at the master's address so it also works from the host; root's
    // kubectl on the master uses the same credential by default. Both have cluster-admin
    // through RBAC (kubeadm:cluster-admins), which an administrator can revoke.
    admin,
    { ...admin, path: PATHS.rootKubeconfig },
    // Break-glass (system:masters, which RBAC cannot revoke): kept on the master, dialling
    // the API server on loopback; the add-on unit uses it only to create admin.conf's binding.
    kc(PATHS.superAdminKubeconfig, IDENTITY.superAdmin, 'super-admin'),
    kc(PATHS.controllerManagerKubeconfig, IDENTITY.controllerManager, 'controller-manager'),
    kc(PATHS.schedulerKubeconfig, IDENTITY.scheduler, 'scheduler'),
    file(PATHS.schedulerConfig, schedulerConfiguration(GENERATED)),
    component('etcd', UNITS.etcd, etcdFlags(plan)),
    component('kube-apiserver', UNITS.apiserver, apiserverFlags(plan)),
    component('kube-controller-manager', UNITS.controllerManager, controllerManagerFlags(plan)),
    component('kube-scheduler', UNITS.scheduler, schedulerFlags()),
    ...addonFiles(plan, GENERATED),
    file(PATHS.addonsScript, render(ctx, PATHS.addonsScript, addonsView), EXECUTABLE),
    unit(ctx, UNITS.addons, addonsView),
  ];
}
