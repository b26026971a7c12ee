// The CNI plugin the labs install on their nodes: what `npm run build` makes.
import { fileURLToPath } from 'node:url';

export const DEFAULT_PLUGIN = fileURLToPath(new URL('../../dist/ipsec-cni', import.meta.url));
