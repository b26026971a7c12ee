// Conventions every subcommand shares: how a command line is parsed and reported, and the
// options that locate a cluster (cluster.yaml, out/, the state dir next to the config).
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * `--config`, `--out`, `--state` for node:util parseArgs. Their defaults are what the
 * Vagrantfile uses too: KUBE_IPSEC_CONFIG, KUBE_IPSEC_OUT, KUBE_IPSEC_STATE when set, so
 * one environment points `vagrant up` and every command at the same cluster.
 */
export const CLUSTER_OPTIONS = {
  config: { type: 'string', default: process.env.KUBE_IPSEC_CONFIG || 'cluster.yaml' },
  out: { type: 'string', default: process.env.KUBE_IPSEC_OUT || 'out' },
  state: { type: 'string', ...(process.env.KUBE_IPSEC_STATE ? { default: process.env.KUBE_IPSEC_STATE } : {}) },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export interface ClusterPaths {
  configFile: string;
  outDir: string;
  /** Default: .kube-ipsec/ next to the config file. */
  stateDir: string;
}

export function clusterPaths(values: { config: string; out: string; state?: string | undefined }): ClusterPaths {
  const configFile = resolve(values.config);
  return { configFile, outDir: resolve(values.out), stateDir: resolve(values.state ?? join(dirname(configFile), '.kube-ipsec')) };
}

/**
 * Runs `parse` (a parseArgs call): a malformed command line prints the error and the help
 * (exit status 2), `--help` prints the help (0); otherwise returns the parsed values.
 */
export function commandLine<T extends { help?: boolean | undefined }>(help: string, parse: () => T): T | number {
  let values: T;
  try {
    values = parse();
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    console.log(help);
    return 0;
  }
  return values;
}

/**
 * A subcommand's command line without positionals: CLUSTER_OPTIONS and its own `options`,
 * parsed and reported as commandLine does.
 */
export function clusterCommandLine<const O extends NonNullable<ParseArgsConfig['options']>>(help: string, argv: string[], options: O) {
  return commandLine(help, () => parseArgs({ args: argv, options: { ...CLUSTER_OPTIONS, ...options }, allowPositionals: false }).values);
}
