// What a node running pods gets: kubelet, kube-proxy, the container runtime and the CNI
// network. Every credential here is this node's own.
import { PATHS, UNITS } from '../plan/paths.ts';
import { CA_ID, IDENTITY } from '../pki/specs.ts';
import type { PlannedNode } from '../plan/plan.ts';
import { componentBinary, imageArchives, type ImageArchive } from './artifacts.ts';
import { cniConflist } from './cni.ts';
import { kubeletConfiguration, kubeProxyConfiguration } from './component-configs.ts';
import { baseView, criUnit, render, type RenderContext } from './context.ts';
import { EXECUTABLE, file, GENERATED, secret, type RenderedFile } from './files.ts';
import { containerdFlags, criDockerdFlags, dockerdFlags, kubeletFlags, kubeProxyFlags } from './flags.ts';
import { kubeconfig } from './kubeconfig.ts';
import { unit } from './mesh.ts';

export function workerFiles(ctx: RenderContext, node: PlannedNode): RenderedFile[] {
  const { plan, pki } = ctx;
  const images = imageArchives(plan, node);
  const view = { ...baseView(ctx, node), runtimeUnit: criUnit(plan), imagesUnit: images.length ? UNITS.images : '' };
  const cred = (id: string) => pki.certs[`${id}@${node.name}`]!;
  const clusterCa = pki.cas[CA_ID]!.cert;
  const kc = (path: string, user: string, id: string) =>
    secret(path, kubeconfig({ cluster: plan.cluster.name, server: plan.apiserver.url, user, caCert: clusterCa, credential: cred(id) }));

  const files = [
    file(PATHS.caCert, clusterCa),
    kc(PATHS.kubeletKubeconfig, `system:node:${node.name}`, 'kubelet-client'),
    file(PATHS.kubeletServingCert, cred('kubelet-serving').cert),
    secret(PATHS.kubeletServingKey, cred('kubelet-serving').key),
    file(PATHS.kubeletConfig, kubeletConfiguration(plan, GENERATED)),
    file(PATHS.kubeletResolvConfScript, render(ctx, PATHS.kubeletResolvConfScript, view), EXECUTABLE),
    unit(ctx, UNITS.kubelet, { ...view, binary: componentBinary('kubelet'), flags: kubeletFlags(node) }),
    kc(PATHS.kubeProxyKubeconfig, IDENTITY.kubeProxy, 'kube-proxy'),
    file(PATHS.kubeProxyConfig, kubeProxyConfiguration(plan, node.name, GENERATED)),
    unit(ctx, UNITS.kubeProxy, { ...view, binary: componentBinary('kube-proxy'), flags: kubeProxyFlags() }),
    file(PATHS.cniConflist, cniConflist(plan, node)),
  ];
  if (plan.runtime === 'docker') {
    files.push(
      unit(ctx, UNITS.docker, { ...view, binary: '/usr/sbin/dockerd', flags: dockerdFlags() }),
      unit(ctx, UNITS.criDockerSocket, view),
      unit(ctx, UNITS.criDockerService, { ...view, binary: componentBinary('cri-dockerd'), flags: criDockerdFlags(plan) }),
    );
  } else {
    files.push(
      unit(ctx, UNITS.containerd, { ...view, binary: componentBinary('containerd'), flags: containerdFlags() }),
      file(PATHS.containerdConfig, render(ctx, PATHS.containerdConfig, { ...view, pauseImage: plan.images.pause.ref })),
    );
  }
  if (images.length) files.push(...imageFiles(ctx, images, view));
  return files;
}

/** Air-gapped: the list of image archives and the oneshot unit that loads them into the runtime. */
function imageFiles(ctx: RenderContext, images: ImageArchive[], view: ReturnType<typeof baseView> & { runtimeUnit: string }): RenderedFile[] {
  const docker = ctx.plan.runtime === 'docker';
  // The runtime's unit, not cri-dockerd's: images live in dockerd's (or containerd's) store.
  const runtimeUnit = docker ? UNITS.docker : UNITS.containerd;
  const list = [
    `# ${GENERATED}`,
    '# reference<TAB>image ID (- = not pinned)<TAB>archive: what kube-ipsec-images.service loads into the runtime',
    ...images.map((a) => [a.image.ref, a.image.id ?? '-', a.dest].join('\t')),
    '',
  ].join('\n');
  const loaderView = { ...view, runtimeUnit, docker, runtime: docker ? 'docker' : 'containerd', ctr: componentBinary('ctr') };
  return [file(PATHS.imagesList, list), file(PATHS.imagesScript, render(ctx, PATHS.imagesScript, loaderView), EXECUTABLE), unit(ctx, UNITS.images, loaderView)];
}
