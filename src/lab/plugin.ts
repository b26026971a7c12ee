// The CNI plugin the labs install on their nodes: what `npm run build` makes.
import { packagePath } from '../package-root.ts';

export const DEFAULT_PLUGIN = packagePath('dist', 'ipsec-cni');
