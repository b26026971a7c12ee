// Render (pure): plan + issued material → every file of every node, plus out/README.md.
// No file system, clock or randomness here; the same inputs give the same bytes.
import type { PkiMaterials } from '../pki/issue.ts';
import type { Plan } from '../plan/plan.ts';
import { nodeMetaFiles } from './artifacts.ts';
import type { RenderContext } from './context.ts';
import { controlPlaneFiles } from './control-plane.ts';
import type { RenderedFile } from './files.ts';
import { manifestFiles } from './manifest.ts';
import { meshFiles } from './mesh.ts';
import { clusterSummary, renderReadme } from './readme.ts';
import type { TemplateSet } from './templates.ts';
import { workerFiles } from './worker.ts';

export interface RenderedCluster {
  /** Node name → its files (absolute paths on the node), sorted by path. */
  nodes: Map<string, RenderedFile[]>;
  /** out/README.md */
  readme: string;
  /** out/cluster.json: the plan's node list for tools outside TypeScript (the Vagrantfile). */
  summary: string;
}

export function renderCluster(plan: Plan, pki: PkiMaterials, templates: TemplateSet): RenderedCluster {
  const ctx: RenderContext = { plan, pki, templates };
  const nodes = new Map<string, RenderedFile[]>();
  for (const node of plan.nodes) {
    const files = [
      ...meshFiles(ctx, node),
      ...(node.role === 'master' ? controlPlaneFiles(ctx) : []),
      ...(node.runsPods ? workerFiles(ctx, node) : []),
      ...nodeMetaFiles(plan, node),
    ];
    files.push(...manifestFiles(plan, node, files));
    assertUniquePaths(node.name, files);
    nodes.set(
      node.name,
      files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    );
  }
  return { nodes, readme: renderReadme(plan, nodes), summary: clusterSummary(plan) };
}

function assertUniquePaths(node: string, files: RenderedFile[]): void {
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw new Error(`internal: ${node} renders ${f.path} twice`);
    seen.add(f.path);
  }
}
