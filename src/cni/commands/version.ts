// VERSION: which spec versions this plugin speaks. Needs no configuration and touches nothing.
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from '../spec/versions.ts';

export function versionInfo(): Record<string, unknown> {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
