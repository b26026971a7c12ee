// `kube-ipsec provision`: render (the same pipeline as `npm run render`), then bring every
// node, or the ones named, to its rendered state over ssh, in parallel, with one progress
// line per fact and a summary. The same provision/ scripts run on the node as under
// `vagrant provision`.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { packagePath } from '../package-root.ts';
import { clusterCommandLine, clusterPaths } from '../cli-args.ts';
import { ConfigError } from '../config/errors.ts';
import { loadClusterFile } from '../config/load.ts';
import { planCluster, type Plan, type PlannedNode } from '../plan/plan.ts';
import { runRender } from '../render/pipeline.ts';
import type { RenderedCluster } from '../render/index.ts';
import { hashFileCached, nodeBundles, type LocalFile, type NodeBundle } from './bundle.ts';
import { emptyResult, formatBytes, shipNode, type NodeResult } from './session.ts';
import { connectSsh } from './ssh.ts';
import { ShipError, type Transport } from './transport.ts';
import { resolveTarget, vagrantEnv } from './targets.ts';

const HELP = `usage: npm run provision -- [options]

  --node NAME             only this node (repeatable, or comma-separated); default: all
  --dry-run               show what would change on each node as a unified diff (secret
                          files named, never shown) and which units would restart; change
                          nothing, here or there
  --rollback              put back the files the last run changed on the node(s)
  --config FILE           cluster description (default ./cluster.yaml)
  --out DIR               rendered output (default ./out)
  --state DIR             certificates, keys, known_hosts (default .kube-ipsec/ next to the config)
  --plugin FILE           the CNI plugin (default dist/ipsec-cni, made by npm run build)
  --root DIR              install below DIR on each node instead of /; {node} is replaced
                          by the node's name (scratch roots for tests)
  --known-hosts FILE      known_hosts to verify nodes with (repeatable; default
                          <state>/known_hosts, then ~/.ssh/known_hosts)
  --accept-new-host-keys  record the key of a node not in known_hosts yet (in the first
                          file) instead of refusing it; a changed key is always refused

Nodes are reached as nodes[].ssh in cluster.yaml says, else through \`vagrant ssh-config\`.
`;

export async function main(argv: string[]): Promise<number> {
  const args = clusterCommandLine(HELP, argv, {
    node: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', default: false },
    rollback: { type: 'boolean', default: false },
    plugin: { type: 'string', default: packagePath('dist', 'ipsec-cni') },
    root: { type: 'string', default: '/' },
    'known-hosts': { type: 'string', multiple: true },
    'accept-new-host-keys': { type: 'boolean', default: false },
  });
  if (typeof args === 'number') return args;
  if (args['dry-run'] && args.rollback) {
    console.error('--dry-run and --rollback cannot be combined');
    return 2;
  }
  if (!isAbsolute(args.root)) {
    console.error(`--root ${args.root}: must be an absolute path on the nodes (e.g. /srv/image/{node})`);
    return 2;
  }
  const { configFile, outDir, stateDir } = clusterPaths(args);
  const configDir = dirname(configFile);
  const started = performance.now();

  const knownHosts = (args['known-hosts'] ?? [join(stateDir, 'known_hosts'), join(homedir(), '.ssh', 'known_hosts')]).map((f) => resolve(f));
  const connect = async (node: PlannedNode): Promise<Connected> => {
    try {
      const target = await resolveTarget(node, { configDir, vagrantEnv: vagrantEnv({ configFile, outDir, stateDir }) });
      const transport = await connectSsh(node.name, target, {
        host: target.host,
        port: target.port,
        ...(target.hostKey !== undefined && { pinned: target.hostKey }),
        knownHosts,
        acceptNew: args['accept-new-host-keys'],
      });
      console.log(`${node.name}: connected to ${transport.description} (${target.source})`);
      return { transport };
    } catch (err) {
      return { error: err as Error };
    }
  };

  let plan: Plan;
  let cluster: RenderedCluster | undefined;
  let names: string[];
  // Each node's connection opens while the cluster renders: neither needs the other, and in
  // a no-op run the handshake and the render are each a good part of the time.
  let connections = new Map<string, Promise<Connected>>();
  try {
    const planned = planCluster(loadClusterFile(configFile));
    names = selectNodes(planned, args.node ?? [], configFile);
    connections = new Map(names.map((name) => [name, connect(planned.nodes.find((n) => n.name === name)!)]));
    // Rendered like `npm run render` (out/ written, certificates reused); a dry run writes
    // nothing. A rollback ships nothing, so it renders nothing.
    if (args.rollback) plan = planned;
    else ({ plan, cluster } = await runRender({ configFile, outDir, stateDir, diff: args['dry-run'] }));
  } catch (err) {
    await closeAll(connections);
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }

  let bundles: NodeBundle[];
  try {
    // A dry run changes nothing, not even the hash cache.
    const hashCache = args['dry-run'] ? undefined : join(stateDir, 'plugin.sha256');
    bundles = cluster
      ? await bundlesFor(plan, cluster, names, resolve(args.plugin), configDir, hashCache)
      : names.map((node) => ({ node, files: [], archives: [], rules: [], ...(plan.binariesAllowAbsent && { allowAbsent: { missing: [] } }) }));
  } catch (err) {
    await closeAll(connections);
    if (!(err instanceof ShipError)) throw err;
    console.error(err.message);
    return 2;
  }

  const results = await Promise.all(
    bundles.map(async (bundle): Promise<NodeResult> => {
      const t0 = performance.now();
      const connected = await connections.get(bundle.node)!;
      if ('error' in connected) {
        if (!(connected.error instanceof ShipError)) throw connected.error;
        return { ...emptyResult(bundle.node), error: connected.error.message, durationMs: performance.now() - t0 };
      }
      const { transport } = connected;
      try {
        return await shipNode(transport, bundle, {
          root: args.root.replaceAll('{node}', bundle.node),
          dryRun: args['dry-run'],
          rollback: args.rollback,
          progress: (line) => console.log(`${bundle.node}: ${line}`),
        });
      } catch (err) {
        if (!(err instanceof ShipError)) throw err;
        return { ...emptyResult(bundle.node), error: err.message, durationMs: performance.now() - t0 };
      } finally {
        transport.close();
      }
    }),
  );

  if (args['dry-run']) {
    for (const r of results) if (r.diff) process.stdout.write(r.diff);
  }
  console.log(summary(results, args['dry-run'], performance.now() - started));
  for (const r of results) if (r.error) console.error(r.error);
  return results.every((r) => r.ok) ? 0 : 1;
}

type Connected = { transport: Transport } | { error: Error };

/** Closes the connections that were opened (a run that ends before shipping anything). */
async function closeAll(connections: Map<string, Promise<Connected>>): Promise<void> {
  for (const c of await Promise.all(connections.values())) if ('transport' in c) c.transport.close();
}

function selectNodes(plan: Plan, requested: string[], configFile: string): string[] {
  const names = requested.flatMap((n) => n.split(',')).filter(Boolean);
  if (!names.length) return plan.nodes.map((n) => n.name);
  const unknown = names.filter((n) => !plan.nodes.some((p) => p.name === n));
  if (unknown.length) {
    throw new ConfigError(configFile, [
      { path: '--node', value: unknown.join(','), problem: 'is not a node of this cluster', fix: `use one of: ${plan.nodes.map((n) => n.name).join(', ')}` },
    ]);
  }
  return [...new Set(names)];
}

async function bundlesFor(
  plan: Plan,
  cluster: RenderedCluster,
  names: string[],
  pluginFile: string,
  configDir: string,
  hashCache: string | undefined,
): Promise<NodeBundle[]> {
  let plugin: LocalFile | undefined;
  if (names.some((n) => plan.nodes.find((p) => p.name === n)!.runsPods)) {
    if (!existsSync(pluginFile))
      throw new ShipError(`the CNI plugin ${relative(process.cwd(), pluginFile)} does not exist: run \`npm run build\` first (or pass --plugin FILE)`);
    plugin = await hashFileCached(pluginFile, hashCache);
  }
  const binariesDir = plan.binariesDir === undefined ? undefined : resolve(configDir, plan.binariesDir);
  return nodeBundles(plan, cluster, names, plugin, binariesDir);
}

function summary(results: readonly NodeResult[], dryRun: boolean, totalMs: number): string {
  const width = Math.max(4, ...results.map((r) => r.node.length));
  const rows = results.map((r) => {
    const files = r.installed.length + r.removed.length;
    const status = !r.ok
      ? 'FAILED'
      : dryRun
        ? files
          ? 'differs'
          : 'in sync'
        : files + r.binaries.length + r.packages.length + r.units.length
          ? 'changed'
          : 'ok';
    const parts = [
      `${files} file${files === 1 ? '' : 's'}${r.removed.length ? ` (${r.removed.length} removed)` : ''}`,
      ...(r.binaries.length ? [`${r.binaries.length} binar${r.binaries.length === 1 ? 'y' : 'ies'}`] : []),
      ...(r.packages.length ? [`${r.packages.length} package${r.packages.length === 1 ? '' : 's'}`] : []),
      ...(r.idle.length ? [`${r.idle.length} idle`] : []),
      ...(r.resumed ? [dryRun ? 'an interrupted run to resume' : 'resumed an interrupted run'] : []),
    ];
    const units = r.units.filter((u) => !u.startsWith('enable ')).join(', ') || '-';
    return `  ${r.node.padEnd(width)}  ${status.padEnd(7)}  ${(r.ok ? parts.join(', ') : '').padEnd(28)}  ${dryRun ? 'would ' : ''}${units === '-' && dryRun ? 'restart nothing' : units}  ${(r.durationMs / 1000).toFixed(2)} s${r.uploaded.bytes ? `, sent ${formatBytes(r.uploaded.bytes)}` : ''}`;
  });
  const failed = results.filter((r) => !r.ok).length;
  const head = `${dryRun ? 'dry run' : 'provisioned'}: ${results.length - failed} of ${results.length} node${results.length === 1 ? '' : 's'} ok in ${(totalMs / 1000).toFixed(2)} s`;
  const idle = results.filter((r) => r.idle.length).map((r) => `  ${r.node.padEnd(width)}  ${r.idle.map(describeIdle).join(', ')}`);
  const note = idle.length ? ['idle: installed and verified (systemd-analyze verify), not started: its program is absent from binaries.dir', ...idle] : [];
  return [head, ...rows, ...note].join('\n');
}

/** `kubelet.service /usr/local/bin/kubelet` → `kubelet.service (no /usr/local/bin/kubelet)`. */
function describeIdle(line: string): string {
  const [unit, ...why] = line.split(' ');
  const reason = why.join(' ');
  return `${unit} (${reason.startsWith('/') ? `no ${reason}` : reason})`;
}
