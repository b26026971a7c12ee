// The mesh as the benches compare it: the rendered ipsec.conf (one initiator per pair), every
// end initiating every pair (how the mesh was rendered before), or trap policies everywhere
// (auto=route: tunnels come up on the first packet). Pure text edits of a rendered ipsec.conf,
// made for a measurement only; the benches put the rendered file back afterwards.

export type MeshVariant = 'rendered' | 'every-end' | 'route';

export const VARIANT_WORDS: Record<MeshVariant, string> = {
  rendered: 'one initiator per pair (rendered)',
  'every-end': 'every end initiates (the mesh before)',
  route: 'auto=route at every end',
};

/** The answering end of each pair initiates too: auto=start, and it restarts the pair itself. */
export function everyEndInitiates(ipsecConf: string): string {
  return ipsecConf.replace(/auto=add\n(\s+)dpdaction=clear\n\s+closeaction=none/g, 'auto=start\n$1dpdaction=restart\n$1closeaction=restart');
}

/** Every conn with trap policies. */
function everyEndRoutes(ipsecConf: string): string {
  return ipsecConf.replace(/^(\s*auto=).*$/gm, '$1route');
}

/** The rendered ipsec.conf as the variant has it. */
export function meshVariant(rendered: string, variant: MeshVariant): string {
  return variant === 'every-end' ? everyEndInitiates(rendered) : variant === 'route' ? everyEndRoutes(rendered) : rendered;
}
