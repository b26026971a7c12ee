// Pinned releases and their published checksums (linux/amd64). A provisioner downloads
// exactly these and refuses anything whose digest differs. Sources are noted per entry so
// a bump can be checked against the same place.

export interface Artifact {
  url: string;
  /** `sha256:<hex>` or `sha512:<hex>` */
  checksum: string;
}

export interface Versions {
  kubernetes: { version: string; server: Artifact; node: Artifact };
  etcd: { version: string; archive: Artifact };
  criDockerd: { version: string; archive: Artifact };
  containerd: { version: string; archive: Artifact; runc: Artifact };
  images: { coredns: ImagePin; pause: ImagePin; smoke: ImagePin };
}

/** A container image: `repository:tag`, the registry's digest for pulls, the image ID for archives. */
export interface ImagePin {
  image: string;
  /** Manifest (list) digest in the registry: nodes that pull use `image@digest`. */
  digest?: string;
  /** Image ID (`sha256:` of its config): what an air-gapped archive must hold. */
  id?: string;
}

export const PINNED: Versions = {
  kubernetes: {
    // v1.37: current, supported until 2027-10-28. Built from source with Go 1.26 (npm run
    // binaries); sha512 from kubernetes/kubernetes CHANGELOG/CHANGELOG-1.37.md, "Downloads for v1.37.1".
    version: 'v1.37.1',
    server: {
      url: 'https://dl.k8s.io/v1.37.1/kubernetes-server-linux-amd64.tar.gz',
      checksum: 'sha512:7460f368c6049dfec1121a0bb3528257f47439e4a0c3d8b1740377cf21073e45c7d911845b8de61d68aae6b57cafa24885d8378f183a26bc2df0d321c4993afd',
    },
    node: {
      url: 'https://dl.k8s.io/v1.37.1/kubernetes-node-linux-amd64.tar.gz',
      checksum: 'sha512:cb81a63367c2bafce9aecd1253ed0377d535e1c11e1ef61c02d34e57d27ea65bf8bb5cc20988b824be41faa8e7ab932d7af5aac8a5878494e40974bb5bc27dfb',
    },
  },
  etcd: {
    // A 3.6 release (kubeadm v1.37 defaults to 3.7.0; 3.6 stays supported as an external etcd,
    // MinExternalEtcdVersion 3.5.24). sha256 as published in the release's SHA256SUMS
    // (cross-checked in several public pins).
    version: 'v3.6.6',
    archive: {
      url: 'https://github.com/etcd-io/etcd/releases/download/v3.6.6/etcd-v3.6.6-linux-amd64.tar.gz',
      checksum: 'sha256:887afaa4a99f22d802ccdfbe65730a5e79aa5c9ce2c8799c67e9d804c50ecedb',
    },
  },
  criDockerd: {
    // 0.3.17: the first that reports the cgroup driver to the kubelet, and the newest release the
    // Go module proxy serves (0.3.18 and later are refused there, so npm run binaries could not
    // build them). kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml
    // cri_dockerd_archive_checksums (the AUR's cri-dockerd-bin 0.3.17 has the same sha256).
    version: '0.3.17',
    archive: {
      url: 'https://github.com/Mirantis/cri-dockerd/releases/download/v0.3.17/cri-dockerd-0.3.17.amd64.tgz',
      checksum: 'sha256:5568d571c2cfee7a31ce0b35b7fcc65b96c85b573ee6645151c4d022ed92a626',
    },
  },
  containerd: {
    // kubespray checksums.yml containerd_archive_checksums
    version: '2.2.1',
    archive: {
      url: 'https://github.com/containerd/containerd/releases/download/v2.2.1/containerd-2.2.1-linux-amd64.tar.gz',
      checksum: 'sha256:f5d8e90ecb6c1c7e33ecddf8cc268a93b9e5b54e0e850320d765511d76624f41',
    },
    runc: {
      url: 'https://github.com/opencontainers/runc/releases/download/v1.3.4/runc.amd64',
      // kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml runc_checksums
      checksum: 'sha256:5966ca40b6187b30e33bfc299c5f1fe72e8c1aa01cf3fefdadf391668f47f103',
    },
  },
  images: {
    // Container images, each pinned by tag and by the registry's manifest-list digest (nodes
    // that pull use `image@digest`). `id` is the image ID (sha256 of the linux/amd64 config):
    // what an air-gapped archive is checked against. No stored source gives the config digest
    // of the upstream images, so none is pinned by default: an archive is then checked for
    // integrity and for carrying this tag. npm run binaries pins the ID of what it builds.
    coredns: {
      // kubeadm v1.37's CoreDNSVersion (cmd/kubeadm/app/constants). Digest: kubernetes/k8s.io
      // PR 9712 ("Promote coredns to v1.14.6", gcrane digest).
      image: 'registry.k8s.io/coredns/coredns:v1.14.6',
      digest: 'sha256:900f9c109f7a33545d3c811516e8376df9019147b750f5ce3e254468769176ea',
    },
    pause: {
      // kubeadm v1.37's PauseVersion. Digest: as about ten public manifests pin it (no promotion
      // record of Kubernetes' own was found).
      image: 'registry.k8s.io/pause:3.10.2',
      digest: 'sha256:f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4',
    },
    smoke: {
      // Kubernetes' own e2e test image at the version v1.37's tests use (test/utils/image/
      // manifest.go): `netexec` serves HTTP, `serve-hostname` the demo. Digest from one public
      // upgrade-test script; 2.66.0's (sha256:e518c9d6…) is the newest in a promotion PR.
      image: 'registry.k8s.io/e2e-test-images/agnhost:2.66.1',
      digest: 'sha256:6e2eef87d0dc77e070a7549bc5fdfa290c0fefe3359eb33c2ad1eda692fe66a4',
    },
  },
};
