// Pod MTU: what fits in one ESP packet on the underlay, so pods never depend on
// fragmentation or PMTU discovery across the tunnel.
//
// Tunnel-mode ESP adds an outer IPv4 header (20), SPI+sequence (8), IV (8 for GCM, 16 for
// CBC), padding to the cipher block (≤15), pad length + next header (2) and the ICV (16):
// 77 bytes covers every proposal strongSwan offers by default. A configured proposal with a
// longer ICV (HMAC-SHA-384: 24, -512: 32) adds the difference. NAT traversal (UDP 4500)
// adds an 8-byte UDP header.
import { espTrailerBytes } from '../config/proposals.ts';

const ESP_OVERHEAD = 77;
const NAT_T_OVERHEAD = 8;
/**
 * strongSwan's userspace ESP (kernel-libipsec) routes through a TUN device with a fixed
 * MTU of 1400 and always encapsulates in UDP; larger packets are truncated, not fragmented.
 */
export const MAX_USERSPACE_ESP_MTU = 1400;

export type EspMode = 'kernel' | 'userspace';

/** ESP's overhead for `esp` (ipsec.esp; default: any of strongSwan's default proposals). */
export function espOverhead(mode: EspMode, esp?: string): number {
  const overhead = Math.max(ESP_OVERHEAD, esp === undefined ? 0 : 20 + 8 + espTrailerBytes(esp));
  return mode === 'userspace' ? overhead + NAT_T_OVERHEAD : overhead;
}

export function podMtu(underlayMtu: number, mode: EspMode, override?: number, esp?: string): number {
  if (override !== undefined) return override;
  const fits = underlayMtu - espOverhead(mode, esp);
  return mode === 'userspace' ? Math.min(fits, MAX_USERSPACE_ESP_MTU) : fits;
}
