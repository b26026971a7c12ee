// The network configuration ipsec-cni reads on stdin (one entry of a .conflist's
// "plugins", with name/cniVersion copied in by the runtime). This type is the contract
// between the renderer (src/render writes it into /etc/cni/net.d) and the plugin.

/** Settings of the plugin itself. */
interface IpsecCniNetConf {
  cniVersion: string;
  name: string;
  type: 'ipsec-cni';
  /** Linux bridge the pods' host-side veths join; created if missing. Default `ipsec-br01`. */
  bridge?: string;
  /**
   * Built-in IPAM (used when `ipam` is absent): the node's pod subnet, e.g. `10.240.1.0/24`.
   * Network, gateway and broadcast addresses are never handed out.
   */
  subnet?: string;
  /** Gateway (the bridge's address); default: first usable address of `subnet`. */
  gateway?: string;
  /** Directory of the built-in IPAM store (`<dataDir>/<name>.json`). Default `/var/lib/cni/ipsec-cni`. */
  dataDir?: string;
  /** How long an invocation waits for the store's lock before answering "try again later" (code 11). Default 10000. */
  lockTimeoutMs?: number;
  /** MTU of both veth ends; the renderer sets underlay MTU minus ESP overhead. Default 1500. */
  mtu?: number;
  /** Enable hairpin mode on the bridge port (a pod reaching itself through a service VIP). */
  hairpinMode?: boolean;
  /** Install a default route in the pod via the gateway. Default true. */
  isDefaultGateway?: boolean;
  /** One JSON line per invocation. Default `/var/log/ipsec-cni.log`. */
  logFile?: string;
  /** Present: delegate address management to this IPAM plugin via CNI_PATH, as the reference `bridge` does. */
  ipam?: { type: string; [key: string]: unknown };
}

/** The .conflist the renderer writes for a node. */
export interface IpsecCniConfList {
  cniVersion: string;
  /** CNI spec 1.1: the versions the list may be used at; a runtime picks the highest it knows. */
  cniVersions?: string[];
  name: string;
  plugins: [Omit<IpsecCniNetConf, 'cniVersion' | 'name'>, ...Record<string, unknown>[]];
}

export const DEFAULT_BRIDGE = 'ipsec-br01';
export const DEFAULT_DATA_DIR = '/var/lib/cni/ipsec-cni';
export const DEFAULT_LOG_FILE = '/var/log/ipsec-cni.log';
