// Pod MTU: what fits in one ESP packet on the underlay, so pods never depend on
// fragmentation or PMTU discovery across the tunnel.
//
// Tunnel-mode ESP adds an outer IPv4 header (20), SPI+sequence (8), IV (8 for GCM, 16 for
// CBC), padding to the cipher block (≤15), pad length + next header (2) and the ICV (16):
// 77 bytes covers every proposal strongSwan offers by default. NAT traversal (UDP 4500)
// adds an 8-byte UDP header.
const ESP_OVERHEAD = 77;
const NAT_T_OVERHEAD = 8;
/**
 * strongSwan's userspace ESP (kernel-libipsec) routes through a TUN device with a fixed
 * MTU of 1400 and always encapsulates in UDP; larger packets are truncated, not fragmented.
 */
export const MAX_USERSPACE_ESP_MTU = 1400;

export type EspMode = 'kernel' | 'userspace';

export function espOverhead(mode: EspMode): number {
  return mode === 'userspace' ? ESP_OVERHEAD + NAT_T_OVERHEAD : ESP_OVERHEAD;
}

export function podMtu(underlayMtu: number, mode: EspMode, override?: number): number {
  if (override !== undefined) return override;
  const fits = underlayMtu - espOverhead(mode);
  return mode === 'userspace' ? Math.min(fits, MAX_USERSPACE_ESP_MTU) : fits;
}
