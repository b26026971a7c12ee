// The render job end to end: cluster.yaml → config → plan → PKI (state dir) → files →
// out/. Side effects (reading the config, the state dir, out/) are confined to here and
// to the store/output modules; everything between is pure.
import { applyBuiltBinaries } from '../binaries/manifest.ts';
import { webcrypto } from 'node:crypto';
import { ConfigError } from '../config/errors.ts';
import { loadClusterFile, parseCluster } from '../config/load.ts';
import { credentialIds, ensurePki, PkiRequestError, type PkiReport, type RotatingId } from '../pki/issue.ts';
import { directoryStore, overlayStore } from '../pki/store.ts';
import { planCluster, type Plan } from '../plan/plan.ts';
import { renderCluster, type RenderedCluster } from './index.ts';
import { diffOutput, outputTree, writeOutput, type WriteReport } from './output.ts';
import { outputDirProblem, type Protected } from './ownership.ts';
import { loadTemplates } from './templates.ts';

export interface RenderJob {
  configFile: string;
  /** The cluster.yaml text to use instead of reading configFile (which still names it in messages). */
  configText?: string;
  outDir: string;
  stateDir: string;
  /** Write (or diff) only out/<node>. */
  node?: string;
  /** Re-issue these credential ids, or all. */
  reissue?: 'all' | string[];
  /** Finish these rotations: drop the previous generation they kept (ike-ca, encryption-key). */
  retire?: string[];
  /** Print what would change instead of writing; the state dir is not touched either. */
  diff?: boolean;
  now?: Date;
}

export interface RenderResult {
  plan: Plan;
  cluster: RenderedCluster;
  pki: PkiReport;
  /** Present when files were written. */
  written?: WriteReport;
  /** Present with `diff`. */
  diff?: string;
}

export async function runRender(job: RenderJob): Promise<RenderResult> {
  const config =
    job.configText === undefined ? loadClusterFile(job.configFile) : applyBuiltBinaries(parseCluster(job.configText, job.configFile), job.configFile);
  const plan = planCluster(config);
  if (job.node !== undefined && !plan.nodes.some((n) => n.name === job.node)) {
    throw new ConfigError(job.configFile, [
      { path: '--node', value: job.node, problem: 'is not a node of this cluster', fix: `use one of: ${plan.nodes.map((n) => n.name).join(', ')}` },
    ]);
  }
  if (Array.isArray(job.reissue)) {
    const known = credentialIds(plan);
    const unknown = job.reissue.filter((id) => !known.includes(id));
    if (unknown.length) {
      throw new ConfigError(job.configFile, [
        { path: '--reissue', value: unknown.join(','), problem: 'names no credential of this cluster', fix: `use all or some of: ${known.join(', ')}` },
      ]);
    }
  }
  // out/ is checked before anything is written, the state dir included.
  const protect: Protected[] = [
    { path: job.configFile, what: 'the cluster description' },
    { path: job.stateDir, what: 'the state dir (CA and keys)' },
  ];
  const refusal = outputDirProblem(job.outDir, protect);
  if (refusal) throw new ConfigError(job.configFile, [{ path: '--out', value: job.outDir, ...refusal }]);
  const state = directoryStore(job.stateDir);
  const { materials, report } = await ensurePki(plan, job.diff ? overlayStore(state) : state, {
    now: job.now ?? new Date(),
    random: (n) => webcrypto.getRandomValues(new Uint8Array(n)),
    ...(job.reissue !== undefined && { reissue: job.reissue }),
    ...(job.retire !== undefined && { retire: job.retire as RotatingId[] }),
  }).catch((err: unknown) => {
    // Refused before anything was written: reported like a bad key of cluster.yaml.
    if (err instanceof PkiRequestError) throw new ConfigError(job.configFile, [{ path: err.option, value: err.value, problem: err.problem, fix: err.fix }]);
    throw err;
  });
  const cluster = renderCluster(plan, materials, loadTemplates());
  const tree = outputTree(cluster, job.node);
  if (job.diff) return { plan, cluster, pki: report, diff: await diffOutput(job.outDir, tree, job.node, protect) };
  return { plan, cluster, pki: report, written: writeOutput(job.outDir, tree, job.node, protect) };
}
