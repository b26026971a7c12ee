// The string formats cluster.yaml's schema names, shared by the generated validator
// (structure.generated.ts) and anything else that checks addresses.
import { parseCidr, parseIpv4 } from '../plan/ipv4.ts';

export const formats: Record<string, (value: string) => boolean> = {
  ipv4: (s) => parseIpv4(s) !== undefined,
  'ipv4-cidr': (s) => parseCidr(s).ok,
};
