// Which box each Vagrant provider boots, from cluster.yaml's `vagrant:` (pure). The
// Vagrantfile reads the result from out/cluster.json, so the key named in an error is the
// one the user has to change.
import type { ClusterConfig } from '../config/defaults.ts';

/** kube-ipsec's own box for vagrant-libvirt, built from Debian packages by `npm run box`. */
export const LOCAL_BOX = 'kube-ipsec/debian12';

const PROVIDERS = ['libvirt', 'virtualbox'] as const;
export type Provider = (typeof PROVIDERS)[number];

export interface ProviderBox {
  name: string;
  /** The cluster.yaml key that chose it. */
  key: string;
  /** kube-ipsec's own box: not downloadable, `npm run box` adds it. */
  local: boolean;
}

export function providerBoxes(v: ClusterConfig['vagrant']): Record<Provider, ProviderBox> {
  const box = (provider: Provider): ProviderBox => {
    const own = v[provider].box;
    const name = own ?? v.box;
    return { name, key: own !== undefined ? `vagrant.${provider}.box` : 'vagrant.box', local: name === LOCAL_BOX };
  };
  return { libvirt: box('libvirt'), virtualbox: box('virtualbox') };
}
