// `kube-ipsec render`: preview every file of every node without VMs.
import { relative } from 'node:path';
import { clusterCommandLine, clusterPaths } from '../cli-args.ts';
import { ConfigError } from '../config/errors.ts';
import { runRender } from './pipeline.ts';

const HELP = `usage: npm run render -- [options]

  --config FILE     cluster description (default ./cluster.yaml)
  --out DIR         output directory (default ./out)
  --state DIR       issued certificates and keys, reused across renders
                    (default .kube-ipsec/ next to the config file)
  --node NAME       write (or diff) only out/NAME
  --diff            show what would change as a unified diff; write nothing
  --reissue IDS     re-issue credentials although valid: "all" or ids such as
                    ca, apiserver, ipsec@minion1 (comma-separated, repeatable)
`;

export async function main(argv: string[]): Promise<number> {
  const args = clusterCommandLine(HELP, argv, {
    node: { type: 'string' },
    diff: { type: 'boolean', default: false },
    reissue: { type: 'string', multiple: true },
  });
  if (typeof args === 'number') return args;
  const { configFile, outDir, stateDir } = clusterPaths(args);
  const reissueIds = (args.reissue ?? []).flatMap((r) => r.split(',')).filter(Boolean);
  const started = performance.now();
  try {
    const result = await runRender({
      configFile,
      outDir,
      stateDir,
      ...(args.node !== undefined && { node: args.node }),
      ...(reissueIds.length && { reissue: reissueIds.includes('all') ? 'all' : reissueIds }),
      diff: args.diff,
    });
    const { issued, reused } = result.pki;
    const pkiLine = issued.length ? `pki: issued ${issued.length} (${summarizeReasons(issued)}), reused ${reused.length}` : `pki: all ${reused.length} credentials reused`;
    if (result.diff !== undefined) {
      process.stdout.write(result.diff || 'no changes\n');
      console.error(pkiLine.replace('issued', 'would issue'));
    } else {
      const w = result.written!;
      const out = relative(process.cwd(), outDir) || '.';
      console.log(pkiLine);
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

/** "ca, apiserver: missing; ipsec@minion1: subject alternative names changed" (ids grouped by reason). */
function summarizeReasons(issued: { id: string; reason: string }[]): string {
  const byReason = new Map<string, string[]>();
  for (const { id, reason } of issued) byReason.set(reason, [...(byReason.get(reason) ?? []), id]);
  return [...byReason].map(([reason, ids]) => `${ids.length > 4 ? `${ids.length} credentials` : ids.join(', ')}: ${reason}`).join('; ');
}
