// The two files that tell provision/apply how to install a node's tree: files.tsv (every
// file with its mode; synced folders and uploads do not carry modes reliably, and a file
// that leaves the list is removed from the node) and restart.tsv (what restarts when).
import { PATHS } from '../plan/paths.ts';
import type { Plan, PlannedNode } from '../plan/plan.ts';
import { file, GENERATED, PUBLIC, type RenderedFile } from './files.ts';
import { restartMapFile, restartRules } from './restarts.ts';

/** `files` are the node's other rendered files; returns restart.tsv and files.tsv. */
export function manifestFiles(plan: Plan, node: PlannedNode, files: readonly RenderedFile[]): RenderedFile[] {
  const restartMap = file(PATHS.restartMap, restartMapFile(restartRules(plan, node, files), GENERATED));
  const listed = [...files, restartMap, { path: PATHS.filesManifest, mode: PUBLIC }].sort((a, b) => (a.path < b.path ? -1 : 1));
  const manifest = [
    `# ${GENERATED}`,
    '# mode<TAB>path of every file kube-ipsec installs on this node (itself included).',
    ...listed.map((f) => `${formatMode(f.mode)}\t${f.path}`),
    '',
  ].join('\n');
  return [restartMap, file(PATHS.filesManifest, manifest)];
}

export function formatMode(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}
