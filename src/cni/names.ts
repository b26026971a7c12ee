// Interface names and MAC addresses the plugin chooses. No node:crypto here: importing it
// costs the compiled plugin ~8 ms of startup on every call (measured), more than all its
// kernel work; a 64-bit FNV-1a and the global Web Crypto RNG do the job.

/** Linux dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':' or whitespace. */
export function isValidIfname(name: string): boolean {
  return name.length > 0 && Buffer.byteLength(name) <= 15 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}

/** 64-bit FNV-1a of the UTF-8 bytes of `s`, as 16 hex digits. */
function fnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(s)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/**
 * Host end of a pod's veth pair: "veth" + 11 hex digits of FNV-1a(containerId/ifname).
 * Deterministic, so DEL and GC find it without the netns or any state; derived from the
 * container id as the seed asked, but hashed rather than truncated because a truncated id
 * is not unique (ids "pod-0001"/"pod-0002", or one container with eth0 and net1, would
 * share it). 44 bits keep a collision among a node's pods below 1e-9.
 */
export function hostVethName(containerId: string, ifname: string): string {
  return 'veth' + fnv1a64(`${containerId}/${ifname}`).slice(0, 11);
}

/**
 * The host veth's alias, visible in `ip link`: which attachment owns it. DEL and GC check it
 * before deleting a host veth by name, so a (theoretical) name collision never removes
 * another pod's interface.
 */
export function hostVethAlias(containerId: string, ifname: string): string {
  return `ipsec-cni:${containerId}/${ifname}`.slice(0, 255);
}

/**
 * A random locally administered unicast MAC. Chosen up front (instead of letting the kernel
 * pick) so ADD knows both MACs for its result without querying the kernel again, and so the
 * bridge gets a fixed address that does not follow its lowest-numbered port.
 */
export function randomMac(random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n))): string {
  const b = random(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
