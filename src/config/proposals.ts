// ipsec.ike and ipsec.esp: strongSwan proposal strings, accepted only from an allow-list of
// strong algorithms. The grammar is ipsec.conf's (strongSwan 5.9, what the nodes run):
// proposals separated by commas, each a list of algorithm keywords separated by dashes, and
// one `!` at the very end of the whole string (starter strips the last character if it is
// `!` and splits the rest at commas: stroke_config.c add_proposals).
//
// Why each rule (strongSwan's own behaviour, which otherwise changes the meaning silently):
// - Without the final `!` charon appends its default proposals to ours, and those still
//   accept 3DES, SHA-1 and MODP-2048 (proposal.c proposal_create_default, "round 2/3").
// - A `!` anywhere else makes that proposal an unknown keyword: charon logs "skipped invalid
//   proposal string" and drops it, and without a final `!` the defaults are appended too.
// - A proposal mixing AEAD and classic ciphers is dropped the same way; integrity algorithms
//   next to an AEAD are silently removed; PRFs in an ESP proposal are silently removed
//   (proposal.c check_proposal).
// - ESP with a classic cipher and no integrity algorithm is accepted by strongSwan:
//   encryption without authentication. NULL encryption and AES-GMAC (authentication only)
//   are accepted too: pod traffic in clear inside ESP.
// The allowed keywords follow strongSwan's Security Recommendations (docs.strongswan.org,
// howtos/securityRecommendations: no des, 3des, cast, blowfish, md5, sha1, modp512-1536,
// modp1024s160, modp2048s224/s256, ecp192) and its 128-bit "round 1" defaults; keyword
// names and meanings are those of proposal_keywords_static.txt.

export type ProposalKind = 'ike' | 'esp';

type Role = 'aead' | 'cipher' | 'integrity' | 'prf' | 'group' | 'esn';

interface Algorithm {
  role: Role;
  /** ESP bytes beyond the payload (worst case): IV, padding to the block, ICV. */
  esp?: { iv: number; block: number; icv: number };
}

const GCM = { iv: 8, block: 4, icv: 16 };
const CBC = { iv: 16, block: 16 };
const CTR = { iv: 8, block: 4 };

/** Every keyword kube-ipsec accepts, with what it is. Aliases are strongSwan's own. */
const ALLOWED: Record<string, Algorithm> = {
  // AES-GCM with the full 16-byte ICV, and ChaCha20-Poly1305 (RFC 7634).
  ...Object.fromEntries(
    [128, 192, 256].flatMap((bits) => [`aes${bits}gcm16`, `aes${bits}gcm128`, `aes${bits}gcm`].map((k) => [k, { role: 'aead', esp: GCM }])),
  ),
  chacha20poly1305: { role: 'aead', esp: GCM },
  // AES-CBC and AES-CTR, with an HMAC-SHA-2 integrity algorithm.
  aes: { role: 'cipher', esp: { ...CBC, icv: 0 } },
  ...Object.fromEntries(
    [128, 192, 256].flatMap((bits) => [
      [`aes${bits}`, { role: 'cipher', esp: { ...CBC, icv: 0 } }],
      [`aes${bits}ctr`, { role: 'cipher', esp: { ...CTR, icv: 0 } }],
    ]),
  ),
  sha256: { role: 'integrity', esp: { iv: 0, block: 1, icv: 16 } },
  sha2_256: { role: 'integrity', esp: { iv: 0, block: 1, icv: 16 } },
  sha384: { role: 'integrity', esp: { iv: 0, block: 1, icv: 24 } },
  sha2_384: { role: 'integrity', esp: { iv: 0, block: 1, icv: 24 } },
  sha512: { role: 'integrity', esp: { iv: 0, block: 1, icv: 32 } },
  sha2_512: { role: 'integrity', esp: { iv: 0, block: 1, icv: 32 } },
  prfsha256: { role: 'prf' },
  prfsha384: { role: 'prf' },
  prfsha512: { role: 'prf' },
  // Key exchange of at least 128-bit strength (strongSwan's "round 1" and "round 2" groups).
  ...Object.fromEntries(
    [
      'ecp256',
      'ecp384',
      'ecp521',
      'ecp256bp',
      'ecp384bp',
      'ecp512bp',
      'curve25519',
      'x25519',
      'curve448',
      'x448',
      'modp3072',
      'modp4096',
      'modp6144',
      'modp8192',
    ].map((k) => [k, { role: 'group' }]),
  ),
  esn: { role: 'esn' },
  noesn: { role: 'esn' },
};

/** Why a keyword strongSwan knows is refused (keywords not listed here are simply not on the list). */
const REFUSED: [RegExp, string][] = [
  [/^null$/, 'is NULL encryption: ESP would carry every pod packet in clear'],
  [/^aes(128|192|256)gmac$/, 'is AES-GMAC, authentication without encryption: ESP would carry every pod packet in clear'],
  [/^(des|3des|cast128|blowfish(128|192|256)?)$/, 'is a broken or 64-bit-block cipher (strongSwan: must not be used)'],
  [/^(prf)?md5(_128)?$/, 'is MD5 (strongSwan: must not be used)'],
  [/^(prf)?sha(1)?(_160)?$/, 'is SHA-1 (strongSwan: must not be used)'],
  [
    /^(modp(512|768|1024|1536)|modp1024s160|modp2048s224|modp2048s256|ecp192|ecp224|ecp224bp)$/,
    'is a weak Diffie-Hellman group (strongSwan: must not be used)',
  ],
  [/^modp2048$/, 'is MODP-2048, 112-bit strength (below the 128 bits every other algorithm here has)'],
  [/^(none|modpnone|modpnull)$/, 'is no key exchange (modpnull is for testing only)'],
  [/^(aes|camellia)(128|192|256)(gcm|ccm)(8|12|64|96)$/, 'is an AEAD with a truncated ICV (8 or 12 bytes): forgeries get easier'],
  [/^sha(2_)?256_96$/, 'is HMAC-SHA-256 truncated to 96 bits (a non-standard, pre-RFC 4868 variant)'],
  [/^chacha20poly1305compat$/, 'is a compatibility variant for old strongSwan releases'],
];

/** The allowed keywords of each role, for messages and the docs. */
export function allowedKeywords(role: Role, kind: ProposalKind = 'esp'): string[] {
  if (kind === 'ike' && role === 'esn') return [];
  if (kind === 'esp' && role === 'prf') return [];
  return Object.entries(ALLOWED)
    .filter(([, a]) => a.role === role)
    .map(([k]) => k);
}

export const EXAMPLES: Record<ProposalKind, string> = {
  ike: 'aes128gcm16-prfsha256-ecp256!',
  esp: 'aes128gcm16-ecp256!',
};

/** The allowed keywords, as a message's fix lists them. */
function alternatives(kind: ProposalKind): string {
  const list = (role: Role) =>
    allowedKeywords(role, kind)
      .filter((k) => !/^(aes\d+gcm(128)?|sha2_\d+|x25519|x448)$/.test(k))
      .join(', ');
  return (
    `e.g. ${EXAMPLES[kind]} (AEAD: ${list('aead')}; or a cipher: ${list('cipher')} with integrity: ${list('integrity')}` +
    `${kind === 'ike' ? `; PRF: ${list('prf')}` : ''}; groups: ${list('group')}; and a final !)`
  );
}

export interface ProposalProblem {
  /** The keyword or proposal at fault, or the whole string. */
  token: string;
  problem: string;
  fix: string;
}

/** Why `value` is not an acceptable ipsec.ike / ipsec.esp, or undefined if it is. */
export function proposalProblem(kind: ProposalKind, value: string): ProposalProblem | undefined {
  const fix = `use only allowed algorithms, ${alternatives(kind)}`;
  if (!value.endsWith('!')) {
    return {
      token: value,
      problem: 'does not end in `!`: without it strongSwan appends its default proposals, which accept 3DES, SHA-1 and MODP-2048',
      fix: `append ! (e.g. ${EXAMPLES[kind]})`,
    };
  }
  const proposals = value.slice(0, -1).split(',');
  for (const proposal of proposals) {
    if (proposal.includes('!')) {
      return {
        token: proposal,
        problem: `has \`!\` inside the list: strongSwan honours only one, at the very end, and would drop the proposal "${proposal}"`,
        fix: 'write one ! at the end of the whole string',
      };
    }
    if (!/^[a-z0-9_]+(-[a-z0-9_]+)*$/.test(proposal)) {
      return {
        token: proposal,
        problem: `"${proposal}" is not a proposal (keywords separated by single dashes; proposals separated by commas)`,
        fix: `write e.g. ${EXAMPLES[kind]}`,
      };
    }
    const roles = new Map<Role, string[]>();
    for (const keyword of proposal.split('-')) {
      const algorithm = ALLOWED[keyword];
      if (!algorithm) {
        const reason = REFUSED.find(([re]) => re.test(keyword))?.[1] ?? "is not on kube-ipsec's allow-list of strong algorithms";
        return { token: keyword, problem: `\`${keyword}\` ${reason}`, fix };
      }
      roles.set(algorithm.role, [...(roles.get(algorithm.role) ?? []), keyword]);
    }
    const has = (role: Role) => roles.get(role)?.[0];
    const problem = (p: string) => ({ token: proposal, problem: `proposal "${proposal}" ${p}`, fix });
    if (!has('aead') && !has('cipher')) return problem('has no encryption algorithm');
    if (has('aead') && has('cipher'))
      return problem(`mixes an AEAD (${has('aead')}) with a classic cipher (${has('cipher')}): strongSwan drops such a proposal`);
    if (has('aead') && has('integrity'))
      return problem(`adds ${has('integrity')} to the AEAD ${has('aead')}, which authenticates by itself (strongSwan would silently drop ${has('integrity')})`);
    if (has('cipher') && !has('integrity')) return problem(`has the cipher ${has('cipher')} without an integrity algorithm: encryption without authentication`);
    if (kind === 'esp' && has('prf')) return problem(`has the PRF ${has('prf')}, which only IKE uses (strongSwan would silently drop it)`);
    if (kind === 'ike' && has('esn')) return problem(`has ${has('esn')}, which only ESP uses`);
    if (kind === 'ike' && !has('group')) return problem('has no key exchange group (IKE needs one)');
    if (kind === 'ike' && has('aead') && !has('prf')) return problem(`has no PRF (an AEAD gives none; strongSwan drops such a proposal), e.g. prfsha256`);
  }
  return undefined;
}

/**
 * The most bytes ESP adds to a packet under these proposals beyond the outer IP header and
 * SPI/sequence: IV, padding to the cipher block (plus pad length and next header) and ICV.
 */
export function espTrailerBytes(esp: string): number {
  let worst = 0;
  for (const proposal of esp.replace(/!$/, '').split(',')) {
    const algorithms = proposal
      .split('-')
      .map((k) => ALLOWED[k]?.esp)
      .filter((a) => a !== undefined);
    const ciphers = algorithms.filter((a) => a.iv > 0);
    const icv = Math.max(0, ...algorithms.map((a) => a.icv));
    for (const c of ciphers) worst = Math.max(worst, c.iv + (c.block - 1) + 2 + icv);
  }
  return worst;
}

/** A JSON-schema pattern accepting exactly the allowed keywords in the proposal grammar (for editors). */
export function proposalPattern(kind: ProposalKind): string {
  const keywords = Object.keys(ALLOWED).filter((k) => !(kind === 'ike' && ALLOWED[k]!.role === 'esn') && !(kind === 'esp' && ALLOWED[k]!.role === 'prf'));
  // Longest first: an alternation takes the first keyword that matches.
  const word = `(${keywords.sort((a, b) => b.length - a.length || (a < b ? -1 : 1)).join('|')})`;
  const proposal = `${word}(-${word})*`;
  return `^${proposal}(,${proposal})*!$`;
}
