// Reading a node's nat table (`iptables -t nat -S`) to explain what the traffic showed:
// which source-NAT rule rewrites pod→pod packets (they then miss the IPsec selectors), or
// that no rule masquerades pod egress.
import { cidr, lastAddress, overlaps, type Cidr } from '../plan/ipv4.ts';

interface AddressMatch {
  negated: boolean;
  cidr: Cidr;
  text: string;
}

export interface NatRule {
  /** The rule as iptables prints it. */
  text: string;
  chain: string;
  target: string;
  src?: AddressMatch;
  dst?: AddressMatch;
}

const SOURCE_NAT = new Set(['MASQUERADE', 'SNAT']);

function address(text: string, negated: boolean): AddressMatch {
  return { negated, cidr: cidr(text.includes('/') ? text : `${text}/32`), text };
}

export function parseNatRules(text: string): NatRule[] {
  const rules: NatRule[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== '-A') continue;
    const rule: NatRule = { text: line.trim(), chain: words[1]!, target: '' };
    for (let i = 2; i < words.length; i++) {
      const negated = words[i] === '!';
      if (negated) i++;
      const [opt, value] = [words[i], words[i + 1]];
      if (value === undefined) continue;
      if (opt === '-s') rule.src = address(value, negated);
      else if (opt === '-d') rule.dst = address(value, negated);
      else if (opt === '-j') rule.target = value;
    }
    rules.push(rule);
  }
  return rules;
}

const covers = (outer: Cidr, inner: Cidr) => outer.base <= inner.base && lastAddress(inner) <= lastAddress(outer);

/** Can this match hold for some address of `range`? */
function mayMatch(m: AddressMatch | undefined, range: Cidr): boolean {
  if (!m) return true;
  return m.negated ? !covers(m.cidr, range) : overlaps(m.cidr, range);
}

/** Source-NAT rules that rewrite traffic from this node's pods to other pods. */
export function podToPodRewrites(rules: NatRule[], nodeSubnet: string, podCidr: string): NatRule[] {
  const [from, to] = [cidr(nodeSubnet), cidr(podCidr)];
  return rules.filter((r) => SOURCE_NAT.has(r.target) && mayMatch(r.src, from) && mayMatch(r.dst, to));
}

/** Source-NAT rules that apply to pod egress to `destination` (an address outside the pod range). */
export function egressRewrites(rules: NatRule[], nodeSubnet: string, destination: string): NatRule[] {
  const [from, to] = [cidr(nodeSubnet), cidr(`${destination}/32`)];
  return rules.filter((r) => SOURCE_NAT.has(r.target) && mayMatch(r.src, from) && mayMatch(r.dst, to));
}

/** Why pod→pod traffic of this node is rewritten, in words; undefined if no rule does. */
export function explainPodToPodRewrite(rules: NatRule[], nodeSubnet: string, podCidr: string): string | undefined {
  const bad = podToPodRewrites(rules, nodeSubnet, podCidr);
  if (!bad.length) return undefined;
  const r = bad[0]!;
  const fix = r.dst?.negated ? `it excludes only ${r.dst.text}, not the whole pod range ${podCidr}` : `missing \`! -d ${podCidr}\``;
  return `the nat rule \`${r.text}\` also rewrites pod→pod traffic (${fix}), so it no longer matches the IPsec selectors`;
}
