// The JSON schema of cluster.yaml: shape, types and formats. It is the one definition of
// the file's structure: ajv validates against it, `RawClusterConfig` is derived from it
// at the type level, and schema/cluster.schema.json (for editors) is written from it.
// Rules that span several keys (overlapping CIDRs, duplicate IPs, …) live in validate.ts.
import type { FromSchema } from 'json-schema-to-ts';
import { BRIDGE_NAME_PATTERN } from './formats.ts';
import { EXAMPLES, proposalPattern } from './proposals.ts';

const cidr = {
  type: 'string',
  format: 'ipv4-cidr',
} as const;
const ipv4 = { type: 'string', format: 'ipv4' } as const;
const duration = {
  type: 'string',
  pattern: '^[0-9]+[smhd]$',
  description: 'A duration such as 45s, 20m, 3h or 1d.',
} as const;
const artifact = {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'checksum'],
  properties: {
    url: {
      type: 'string',
      // A URL as artifacts.tsv carries it to the node (one row per archive, tab-separated):
      // no whitespace or control character, no query or fragment, and a last path segment
      // that names the archive (install-binaries caches and looks it up by that name).
      pattern:
        "^https://([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?/([A-Za-z0-9._~%!$&'()*+,;=:@-]+/)*[A-Za-z0-9_~%!$&'()*+,;=:@-][A-Za-z0-9._~%!$&'()*+,;=:@-]*$",
      description: 'Where the provisioner downloads it: https://host/path/<archive file name>, without whitespace, query or fragment.',
    },
    checksum: {
      type: 'string',
      pattern: '^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$',
      description: 'sha256:<64 hex> or sha512:<128 hex>; verified before anything is unpacked.',
    },
  },
} as const;

const imagePin = {
  type: 'object',
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: {
      type: 'string',
      pattern: '^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$',
      description: 'registry/repository:tag (a tag is required; an air-gapped archive must carry it).',
    },
    digest: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$', description: 'Registry manifest (list) digest: nodes that pull use image@digest.' },
    id: {
      type: 'string',
      pattern: '^sha256:[0-9a-f]{64}$',
      description: 'Image ID (sha256 of the image config, `docker image inspect -f {{.Id}}`): an air-gapped archive must hold exactly this image.',
    },
  },
} as const;

export const clusterSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://github.com/kube-ipsec/kube-ipsec/schema/cluster.schema.json',
  title: 'kube-ipsec cluster.yaml',
  description: 'One file describing a Kubernetes cluster whose pod network is an IPsec full mesh.',
  type: 'object',
  additionalProperties: false,
  required: ['nodes'],
  properties: {
    cluster: {
      type: 'object',
      additionalProperties: false,
      description: 'Names: the cluster and its DNS domain.',
      properties: {
        name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, description: 'Cluster name (kubeconfig cluster entry, CA name).' },
        domain: {
          type: 'string',
          pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
          description: 'Cluster DNS domain, e.g. cluster.local.',
        },
      },
    },
    network: {
      type: 'object',
      additionalProperties: false,
      description: 'Address ranges, the pod bridge and MTUs. Every CIDR and address in every rendered file comes from here.',
      properties: {
        nodeCidr: { ...cidr, description: 'Underlay network holding every node IP (the Vagrant private network).' },
        podCidr: { ...cidr, description: 'Whole pod range; every node gets one subnet of it.' },
        nodeSubnetPrefix: { type: 'integer', minimum: 8, maximum: 30, description: "Prefix length of each node's pod subnet (24 = one /24 per node)." },
        serviceCidr: { ...cidr, description: 'Service (ClusterIP) range; its first address is the kubernetes service VIP.' },
        clusterDns: { ...ipv4, description: 'Cluster DNS service IP; must lie inside serviceCidr.' },
        bridge: {
          type: 'string',
          pattern: BRIDGE_NAME_PATTERN,
          format: 'pod-bridge',
          description: 'Pod bridge on every node: an interface name of its own (not lo, eth*, en*, veth*, ipsec0, docker0, …).',
        },
        underlayMtu: { type: 'integer', minimum: 576, maximum: 9216, description: 'MTU of the node network.' },
        podMtu: { type: 'integer', minimum: 576, maximum: 9216, description: 'Override the pod MTU (default: underlayMtu minus ESP overhead).' },
      },
    },
    nodes: {
      type: 'array',
      minItems: 1,
      description: 'The machines: exactly one master, any number of minions (the only required key).',
      items: {
        type: 'object',
        additionalProperties: false,
        description: 'One node.',
        required: ['name', 'ip'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, description: 'Host name (a DNS label).' },
          role: { type: 'string', enum: ['master', 'minion'], description: 'master runs etcd and the control plane; minions run pods. Default: minion.' },
          ip: { ...ipv4, description: 'Node address on the underlay network.' },
          podSubnet: { ...cidr, description: "This node's pod subnet. Default: master → index 0, <name><N> → index N.", examples: ['10.240.7.0/24'] },
          memory: { type: 'integer', minimum: 512, description: 'VM memory in MiB. Default: vagrant.memory.' },
          cpus: { type: 'integer', minimum: 1, description: 'VM CPUs. Default: vagrant.cpus.' },
          ssh: {
            type: 'object',
            additionalProperties: false,
            description: 'How `kube-ipsec provision` reaches the node (default: from `vagrant ssh-config`).',
            properties: {
              host: {
                type: 'string',
                maxLength: 253,
                // A host name or an IPv4/IPv6 address, never something ssh reads as an option.
                pattern: '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$',
                description: "Host name or address to connect to (a host name or an IP address, never an option). Default: the node's ip.",
                examples: ['192.168.121.17'],
              },
              port: { type: 'integer', minimum: 1, maximum: 65535, description: "sshd's port. Default: 22." },
              user: {
                type: 'string',
                pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,31}$',
                description: 'Login user (a user name: letters, digits, _ . -); any user but root runs everything through `sudo -n`. Default: root.',
                examples: ['vagrant'],
              },
              privateKey: { type: 'string', minLength: 1, description: 'Path of the private key file.', examples: ['~/.ssh/id_ed25519'] },
              hostKey: {
                type: 'string',
                pattern: '^SHA256:[A-Za-z0-9+/]{43}$',
                description: 'Pinned host key fingerprint (ssh-keygen -lf style).',
                examples: ['SHA256:Vb1Jp0Cx3mG0mS2Hl9u5cT7d0bQ4nq2yG1w6o8eR3kA'],
              },
            },
          },
        },
      },
    },
    runtime: { type: 'string', enum: ['docker', 'containerd'], description: 'Container runtime: docker (through cri-dockerd) or containerd.' },
    versions: {
      type: 'object',
      additionalProperties: false,
      description: 'Pinned releases with checksums. Override all parts of one entry together.',
      properties: {
        kubernetes: {
          type: 'object',
          additionalProperties: false,
          description: 'The Kubernetes release: its server and node archives.',
          required: ['version', 'server', 'node'],
          properties: {
            version: { type: 'string', pattern: '^v1\\.(3[3-9]|[4-9][0-9])\\.[0-9]+$', description: 'Kubernetes release, v1.33 or newer.' },
            server: { ...artifact, description: 'kubernetes-server-linux-<arch>.tar.gz (control plane binaries).' },
            node: { ...artifact, description: 'kubernetes-node-linux-<arch>.tar.gz (kubelet, kube-proxy).' },
          },
        },
        etcd: {
          type: 'object',
          additionalProperties: false,
          description: 'etcd, on the master.',
          required: ['version', 'archive'],
          properties: {
            version: { type: 'string', pattern: '^v3\\.[4-9]\\.[0-9]+$', description: 'etcd release, v3.4 or newer.' },
            archive: {
              ...artifact,
              description: 'The release archive, or a Debian etcd-server .deb (the daemon is taken from its data; etcdctl is not installed).',
            },
          },
        },
        criDockerd: {
          type: 'object',
          additionalProperties: false,
          description: 'cri-dockerd, the CRI shim between the kubelet and docker (runtime: docker).',
          required: ['version', 'archive'],
          properties: {
            version: { type: 'string', pattern: '^[0-9]+\\.[0-9]+\\.[0-9]+$', description: 'cri-dockerd release.' },
            archive: { ...artifact, description: 'The release archive.' },
          },
        },
        containerd: {
          type: 'object',
          additionalProperties: false,
          description: 'containerd and runc (runtime: containerd).',
          required: ['version', 'archive', 'runc'],
          properties: {
            version: { type: 'string', pattern: '^[0-9]+\\.[0-9]+\\.[0-9]+$', description: 'containerd release.' },
            archive: { ...artifact, description: 'The containerd release archive.' },
            runc: { ...artifact, description: 'The runc binary.' },
          },
        },
        images: {
          type: 'object',
          additionalProperties: false,
          description: "Container images the cluster runs (CoreDNS, the runtime's pause image, the smoke test). Override one image whole.",
          properties: {
            coredns: { ...imagePin, description: "CoreDNS, the cluster DNS (an add-on on the master's tree)." },
            pause: { ...imagePin, description: "The runtime's pause (sandbox) image." },
            smoke: { ...imagePin, description: 'agnhost, the pods `npm run smoke` deploys.' },
          },
        },
      },
    },
    binaries: {
      type: 'object',
      additionalProperties: false,
      description: 'Air-gapped installs: where the archives come from instead of their URLs.',
      properties: {
        dir: {
          type: 'string',
          minLength: 1,
          description:
            'Air-gapped install: a host directory (relative to cluster.yaml) holding the archives named as in their URLs, and the image archives; nothing is downloaded.',
          examples: ['./binaries'],
        },
        allowAbsent: {
          type: 'boolean',
          description:
            'Air-gapped install with some archives not at hand: their binaries are left out, and the units that need them are installed and verified (systemd-analyze verify) but neither enabled nor started; provisioning says which. Needs binaries.dir.',
        },
      },
    },
    ipsec: {
      type: 'object',
      additionalProperties: false,
      description: 'The strongSwan full mesh: authentication, proposals, lifetimes, what it carries.',
      properties: {
        auth: {
          type: 'string',
          enum: ['pubkey', 'psk'],
          description: 'pubkey: per-node certificates from the IKE CA, which is trusted for IKE only; psk: one random key per node pair.',
        },
        // The pattern lets editors flag what the format refuses; the format says why (proposals.ts).
        ike: {
          type: 'string',
          format: 'ike-proposals',
          pattern: proposalPattern('ike'),
          description: `IKE proposals from the allow-list of strong algorithms, ending in !, e.g. ${EXAMPLES.ike}`,
        },
        esp: {
          type: 'string',
          format: 'esp-proposals',
          pattern: proposalPattern('esp'),
          description: `ESP proposals from the allow-list of strong algorithms, ending in !, e.g. ${EXAMPLES.esp}`,
        },
        ikeLifetime: { ...duration, description: 'IKE_SA lifetime (rekeyed in place, reauth=no): a duration such as 45s, 20m, 3h or 1d.' },
        lifetime: { ...duration, description: 'CHILD_SA lifetime (the new SA is installed before the old one goes): a duration such as 45s, 20m, 3h or 1d.' },
        rekeyMargin: {
          ...duration,
          description: 'How long before a lifetime ends the rekey starts; shorter than both lifetimes: a duration such as 45s, 20m, 3h or 1d.',
        },
        dpdDelay: { ...duration, description: 'Dead-peer detection interval: a duration such as 45s, 20m, 3h or 1d.' },
        nodeEncryption: {
          type: 'boolean',
          description:
            "Also encrypt node-to-node traffic (kubelet, apiserver, etcd, a pod to another node's address): the node addresses join the IPsec selectors. Needs espMode kernel. IKE and ssh from outside the cluster stay as they are.",
        },
        espMode: {
          type: 'string',
          enum: ['kernel', 'userspace'],
          description:
            "kernel: ESP in the kernel (VMs). userspace: strongSwan's kernel-libipsec over a TUN device, for kernels without ESP (the namespace lab).",
        },
      },
    },
    pki: {
      type: 'object',
      additionalProperties: false,
      description: 'The certificates npm run render issues (kept in the state directory and reused).',
      properties: {
        keyAlgorithm: { type: 'string', enum: ['ecdsa-p256', 'rsa-2048'], description: 'Key type of every certificate and of the service-account key.' },
        caValidityDays: { type: 'integer', minimum: 1, maximum: 36500, description: 'Validity of the CAs, in days.' },
        certValidityDays: { type: 'integer', minimum: 1, maximum: 3650, description: 'Validity of every other certificate, in days.' },
        renewBeforeDays: { type: 'integer', minimum: 0, maximum: 3650, description: 'Re-issue a certificate this many days before it expires.' },
      },
    },
    vagrant: {
      type: 'object',
      additionalProperties: false,
      description: 'The VMs `vagrant up` makes (one per node).',
      properties: {
        box: { type: 'string', minLength: 1, description: 'Box of every provider that has no box of its own below.' },
        memory: { type: 'integer', minimum: 512, description: 'Default VM memory in MiB.' },
        cpus: { type: 'integer', minimum: 1, description: 'Default VM CPUs.' },
        libvirt: {
          type: 'object',
          additionalProperties: false,
          description: 'vagrant-libvirt (`vagrant up --provider libvirt`).',
          properties: {
            box: { type: 'string', minLength: 1, description: 'Box for libvirt, e.g. kube-ipsec/debian12 (built by `npm run box`). Default: vagrant.box.' },
            driver: {
              type: 'string',
              enum: ['kvm', 'qemu'],
              description: 'Domain type. Default: kvm when /dev/kvm runs ordinary guests, else qemu (software emulation).',
            },
            cpuMode: {
              type: 'string',
              enum: ['host-passthrough', 'host-model', 'maximum', 'custom'],
              description: "Guest CPU. Default: host-passthrough with kvm, maximum (QEMU's max: AES-NI emulated) with qemu.",
            },
            cpuModel: {
              type: 'string',
              // It lands in libvirt's domain XML (vagrant-libvirt's domain.xml.erb), as text.
              pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
              description: 'CPU model for cpuMode custom, a libvirt model name such as qemu64 or Skylake-Client-IBRS.',
            },
          },
        },
        virtualbox: {
          type: 'object',
          additionalProperties: false,
          description: 'VirtualBox (`vagrant up --provider virtualbox`).',
          properties: {
            box: { type: 'string', minLength: 1, description: 'Box for VirtualBox. Default: vagrant.box.' },
          },
        },
      },
    },
  },
} as const;

/** cluster.yaml as written by the user, after structural validation. */
export type RawClusterConfig = FromSchema<typeof clusterSchema>;
