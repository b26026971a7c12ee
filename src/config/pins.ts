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
    version: 'v1.35.0',
    // sha512 from kubernetes/kubernetes CHANGELOG/CHANGELOG-1.35.md, "Downloads for v1.35.0"
    server: {
      url: 'https://dl.k8s.io/v1.35.0/kubernetes-server-linux-amd64.tar.gz',
      checksum: 'sha512:23af53c49de841a0d5c19d9525d820cecc9d55367c132296a5f381d051438bf06dcddff3d0236df8ba6011a6aa5d0ffc31960d277c7f53a0ad98e66d6f8d6a0a',
    },
    node: {
      url: 'https://dl.k8s.io/v1.35.0/kubernetes-node-linux-amd64.tar.gz',
      checksum: 'sha512:179278fecb65d246443f58cef00ca2f2a9d0ac6fbdb310994f0ac7fca249f7bdc1c79ea7f3e5455c1e2d2460f5447d006bfa579f97b502ee7034b2a1927f934a',
    },
  },
  etcd: {
    // The etcd release Kubernetes v1.35 itself ships with (registry.k8s.io/etcd:3.6.6-0).
    // sha256 as published in the release's SHA256SUMS (cross-checked in several public pins).
    version: 'v3.6.6',
    archive: {
      url: 'https://github.com/etcd-io/etcd/releases/download/v3.6.6/etcd-v3.6.6-linux-amd64.tar.gz',
      checksum: 'sha256:887afaa4a99f22d802ccdfbe65730a5e79aa5c9ce2c8799c67e9d804c50ecedb',
    },
  },
  criDockerd: {
    // kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml cri_dockerd_archive_checksums
    version: '0.3.24',
    archive: {
      url: 'https://github.com/Mirantis/cri-dockerd/releases/download/v0.3.24/cri-dockerd-0.3.24.amd64.tgz',
      checksum: 'sha256:dd4b7f514c248a3aaca398f467430a4c58aae9a77ea8b96a2f5b5d6fba0948d1',
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
    // Container images, each pinned by tag and, where a stored public source gives it, by the
    // registry's manifest digest (nodes that pull use `image@digest`). `id` is the image ID
    // (sha256 of the linux/amd64 config): what an air-gapped archive (docker save) is checked
    // against. No stored source gives the amd64 config digest of these three images, so no `id`
    // is pinned by default: an archive is then checked for integrity (config and every layer
    // against their digests) and for carrying this tag; set `id` to pin its content too.
    coredns: {
      // Kubernetes v1.35 ships CoreDNS v1.13.1 (kubeadm's CoreDNSVersion; `kubeadm config images
      // list` for v1.35.0). No stored source has the digest of registry.k8s.io/coredns/coredns:
      // v1.13.1, so the CoreDNS project's own image of that release is used, whose digest several
      // public pins agree on (docker.io/coredns/coredns:1.13.1).
      image: 'docker.io/coredns/coredns:1.13.1',
      digest: 'sha256:9b9128672209474da07c91439bf15ed704ae05ad918dd6454e5b6ae14e35fee6',
    },
    pause: {
      // kubeadm's PauseVersion for v1.35; digest as pinned in many public manifests.
      image: 'registry.k8s.io/pause:3.10.1',
      digest: 'sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c',
    },
    smoke: {
      // Kubernetes' own e2e test image: `netexec` serves HTTP, and it carries nslookup/dig.
      image: 'registry.k8s.io/e2e-test-images/agnhost:2.53',
      digest: 'sha256:99c6b4bb4a1e1df3f0b3752168c89358794d02258ebebc26bf21c29399011a85',
    },
  },
};
