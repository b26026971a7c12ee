// `kube-ipsec render`: preview every file of every node without VMs.
import { relative } from 'node:path';
import { clusterCommandLine, clusterPaths } from '../cli-args.ts';
import { ConfigError } from '../config/errors.ts';
import type { RotatingId } from '../pki/issue.ts';
import { runRender } from './pipeline.ts';

const HELP = `usage: npm run render -- [options]

  --config FILE     cluster description (default ./cluster.yaml)
  --out DIR         output directory (default ./out)
  --state DIR       issued certificates and keys, reused across renders
                    (default .kube-ipsec/ next to the config file)
  --node NAME       write (or diff) only out/NAME
  --diff            show what would change as a unified diff; write nothing
  --reissue IDS     re-issue credentials although valid: "all" or ids such as
                    ca, apiserver, ipsec@minion1 (comma-separated, repeatable).
                    ike-ca and encryption-key start a rotation: the previous one
                    stays in use beside the new one until --retire
  --retire IDS      finish a rotation (ike-ca, encryption-key) once every node is
                    provisioned with its start: drop the previous generation
                    (docs/security.md, Rotation)
`;

export async function main(argv: string[]): Promise<number> {
  const args = clusterCommandLine(HELP, argv, {
    node: { type: 'string' },
    diff: { type: 'boolean', default: false },
    reissue: { type: 'string', multiple: true },
    retire: { type: 'string', multiple: true },
  });
  if (typeof args === 'number') return args;
  const { configFile, outDir, stateDir } = clusterPaths(args);
  const reissueIds = (args.reissue ?? []).flatMap((r) => r.split(',')).filter(Boolean);
  const retireIds = (args.retire ?? []).flatMap((r) => r.split(',')).filter(Boolean);
  const started = performance.now();
  try {
    const result = await runRender({
      configFile,
      outDir,
      stateDir,
      ...(args.node !== undefined && { node: args.node }),
      ...(reissueIds.length && { reissue: reissueIds.includes('all') ? 'all' : reissueIds }),
      ...(retireIds.length && { retire: retireIds }),
      diff: args.diff,
    });
    const { issued, reused } = result.pki;
    const rotationLines = [
      ...result.pki.retired.map((id) => `pki: ${id} rotation finished: its previous generation is gone from the state and, once provisioned, from the nodes`),
      ...result.pki.open.map((id) => `pki: ${id} rotation in progress: ${ROTATION_NEXT_STEP[id]}`),
    ];
    const pkiLine = issued.length
      ? `pki: issued ${issued.length} (${summarizeReasons(issued)}), reused ${reused.length}`
      : `pki: all ${reused.length} credentials reused`;
    if (result.diff !== undefined) {
      process.stdout.write(result.diff || 'no changes\n');
      console.error(pkiLine.replace('issued', 'would issue'));
      for (const l of rotationLines) console.error(l);
    } else {
      const w = result.written!;
      const out = relative(process.cwd(), outDir) || '.';
      console.log(pkiLine);
      for (const l of rotationLines) console.log(l);
      console.log(
        `${out}/${args.node ? `${args.node}/` : ''}: ${w.written.length} written, ${w.unchanged} unchanged, ${w.removed.length} removed ` +
          `(${result.plan.nodes.length} nodes, ${Math.round(performance.now() - started)} ms)`,
      );
      for (const p of w.removed) console.log(`  removed ${p}`);
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
}

/** What finishes an open rotation (docs/security.md, Rotation). */
const ROTATION_NEXT_STEP: Record<RotatingId, string> = {
  'ike-ca': 'nodes trust the previous and the new IKE CA; once every node is provisioned, finish it with --retire ike-ca',
  'encryption-key':
    'the API server reads Secrets with the previous and the new key; once the master is provisioned and kube-ipsec-addons.service has rewritten every Secret, finish it with --retire encryption-key',
};

/** "ca, apiserver: missing; ipsec@minion1: subject alternative names changed" (ids grouped by reason). */
function summarizeReasons(issued: { id: string; reason: string }[]): string {
  const byReason = new Map<string, string[]>();
  for (const { id, reason } of issued) byReason.set(reason, [...(byReason.get(reason) ?? []), id]);
  return [...byReason].map(([reason, ids]) => `${ids.length > 4 ? `${ids.length} credentials` : ids.join(', ')}: ${reason}`).join('; ');
}
