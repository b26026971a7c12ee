// The master's control plane: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, their certificates and kubeconfigs. The CA key is placed here and only
// here (the controller manager signs kubelet CSRs with it).
import { PATHS, UNITS } from '../plan/paths.ts';
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
  const kc = (path: string, user: string, id: string, server = plan.apiserver.localUrl) =>
    secret(path, kubeconfig({ cluster: plan.cluster.name, server, user, caCert: pki.ca.cert, credential: cred(id) }));
  const component = (name: string, unitName: string, flags: readonly (readonly [string, string])[]) =>
    unit(ctx, unitName, { ...view, binary: componentBinary(name), flags });

  const admin = kc(PATHS.adminKubeconfig, 'kubernetes-admin', 'admin', plan.apiserver.url);
  const addonsView = {
    ...view,
    kubectl: componentBinary('kubectl'),
    apiserverUrl: plan.apiserver.url,
    manifests: addonManifests(plan).map((m) => m.path),
    readyTimeoutSeconds: ADDONS_READY_TIMEOUT_S,
    startTimeoutSeconds: ADDONS_READY_TIMEOUT_S + 120,
  };
  return [
    file(PATHS.caCert, pki.ca.cert),
    secret(PATHS.caKey, pki.ca.key),
    file(PATHS.etcdCaCert, pki.ca.cert),
    ...pair(PATHS.etcdServerCert, PATHS.etcdServerKey, 'etcd-server'),
    ...pair(PATHS.etcdPeerCert, PATHS.etcdPeerKey, 'etcd-peer'),
    ...pair(PATHS.apiserverCert, PATHS.apiserverKey, 'apiserver'),
    ...pair(PATHS.apiserverEtcdClientCert, PATHS.apiserverEtcdClientKey, 'apiserver-etcd-client'),
    ...pair(PATHS.apiserverKubeletClientCert, PATHS.apiserverKubeletClientKey, 'apiserver-kubelet-client'),
    secret(PATHS.serviceAccountKey, pki.serviceAccount.key),
    file(PATHS.serviceAccountPub, pki.serviceAccount.pub),
    // admin.conf points at the master's address so it also works from the host; root's
    // kubectl on the master uses the same credential by default.
    admin,
    { ...admin, path: PATHS.rootKubeconfig },
    kc(PATHS.controllerManagerKubeconfig, 'system:kube-controller-manager', 'controller-manager'),
    kc(PATHS.schedulerKubeconfig, 'system:kube-scheduler', 'scheduler'),
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
