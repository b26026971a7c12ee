// `kube-ipsec smoke` (npm run smoke): the Kubernetes layer of a running cluster, checked the way
// the seeds accepted it — every node Ready, pods on every minion with addresses from their
// node's subnet, HTTP between pods across every pair of minions, a Service name resolved by
// cluster DNS from every minion, a NodePort answering on every node — in a namespace of its own
// that is removed afterwards. Exit status 1 names what failed and its likely cause.
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { clusterCommandLine, clusterPaths } from '../cli-args.ts';
import { ConfigError } from '../config/errors.ts';
import { loadClusterFile } from '../config/load.ts';
import { PATHS } from '../plan/paths.ts';
import { planCluster, type Plan } from '../plan/plan.ts';
import { processRunner } from '../run.ts';
import { reportTable, summary, type Finding } from './decide.ts';
import { smokeRun } from './manifests.ts';
import { kubectlKube, runSmoke } from './smoke.ts';

const HELP = `usage: npm run smoke -- [options]

Deploys one pod per minion, a Service and a NodePort in a namespace of its own, checks nodes,
pod addresses, pod → pod HTTP across every pair of minions, the Service's DNS name from every
minion and the NodePort on every minion, prints a table and removes what it created.

  --config FILE       cluster description (default ./cluster.yaml)
  --out DIR           rendered tree (default ./out): the admin kubeconfig is
                      out/<master>${PATHS.adminKubeconfig}
  --kubeconfig FILE   another kubeconfig instead
  --kubectl PATH      kubectl to use (default: kubectl on PATH)
  --timeout SECONDS   how long pods may take to become Ready (default 180)
  --keep              leave the namespace for inspection
`;

export async function main(argv: string[]): Promise<number> {
  const args = clusterCommandLine(HELP, argv, {
    kubeconfig: { type: 'string' },
    kubectl: { type: 'string', default: 'kubectl' },
    timeout: { type: 'string', default: '180' },
    keep: { type: 'boolean', default: false },
  });
  if (typeof args === 'number') return args;
  const timeout = Number(args.timeout);
  if (!Number.isInteger(timeout) || timeout < 10) {
    console.error(`--timeout ${args.timeout}: give whole seconds, at least 10`);
    return 2;
  }
  const { configFile, outDir } = clusterPaths(args);
  let plan: Plan;
  try {
    plan = planCluster(loadClusterFile(configFile));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const kubeconfig = resolve(args.kubeconfig ?? join(outDir, plan.master.name, PATHS.adminKubeconfig));
  if (!existsSync(kubeconfig)) {
    console.error(`smoke: ${kubeconfig} does not exist: run npm run render (it writes the admin kubeconfig), or pass --kubeconfig FILE`);
    return 2;
  }
  const run = smokeRun(plan, randomBytes(3).toString('hex'));
  const started = performance.now();
  const say = (line: string) => console.log(`smoke: ${line} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  let findings: Finding[];
  try {
    findings = await runSmoke({ plan, run, kube: kubectlKube(processRunner, kubeconfig, args.kubectl), say, podTimeoutMs: timeout * 1000, keep: args.keep });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT')
      console.error(
        `smoke: ${args.kubectl} not found: install kubectl (it is on the master too: vagrant ssh ${plan.master.name} -c 'sudo kubectl get nodes'), or pass --kubectl PATH`,
      );
    else console.error(`smoke: ${e.message}\n  is the API server at ${plan.apiserver.url} reachable from here? (KUBECONFIG=${kubeconfig} kubectl get nodes)`);
    return 1;
  }
  console.log(`\n${reportTable(findings)}\n\n${summary(findings)}`);
  return findings.every((f) => f.ok) ? 0 : 1;
}
