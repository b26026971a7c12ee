// `kube-ipsec lab up | check | status | ssh | down`: the rendered cluster's pod network in network
// namespaces on this host (root), proven with real strongSwan, the real plugin and tcpdump.
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { clusterPaths, CLUSTER_OPTIONS, commandLine } from '../cli-args.ts';
import { ConfigError } from '../config/errors.ts';
import type { EspMode } from '../plan/mtu.ts';
import { check } from '../check/check.ts';
import { timer } from '../clock.ts';
import { down } from './down.ts';
import { LabError } from './host.ts';
import { requireUp } from './lab.ts';
import { openLab } from './open.ts';
import { CheckError } from '../check/errors.ts';
import { readState } from './state.ts';
import { CHECK_NAMES, formatResult, formatVerdict, type CheckName } from '../check/report.ts';
import { formatStatus, labStatus } from './status.ts';
import { validatePrefix } from './topology.ts';
import { up, type UpOptions } from './up.ts';
import { vmUp, type VmUpOptions } from './vm/up.ts';
import { SHORT_LIFETIMES, type LabLifetimes } from './render.ts';

const HELP = `usage: npm run lab -- <up|check|status|down> [options]     (as root)
       npm run lab -- up --vm [options]                         the nodes as qemu VMs
       npm run lab -- ssh NODE [-- COMMAND…]                    a command on a lab node

  up        render cluster.yaml (the lab's overrides: ESP in userspace where the kernel
            has none, short SA lifetimes), one network namespace per node on an underlay
            bridge, each node booted from its rendered tree, real strongSwan, pods via
            dist/ipsec-cni
  up --vm   every node a Debian 12 VM under qemu (KVM when usable, else software
            emulation) on taps inside the lab's namespace, from a cached image, provisioned
            by \`kube-ipsec provision\` over ssh; kernel ESP; pods via ipsec-cni in the VMs
  check     tunnels, pod/node ping matrix, underlay capture, non-pod sources, crafted
            clear-text packets to pods from the underlay, masquerade, MTU, rekeys and
            fail-closed; on VMs also kernel ESP, units, node traffic (with
            ipsec.nodeEncryption), re-provisioning one minion and rebooting it; exits 1 if
            anything fails
  status    tunnels, pods and their IPs per node, read from the running lab
  ssh       run COMMAND on NODE (a login shell without one), as \`vagrant ssh -c\` does:
            on a VM lab with Kubernetes, \`npm run lab -- ssh master -- kubectl get nodes\`
  down      stop what the lab started (by PID), delete its namespaces and files

options:
  --config FILE     cluster description (default ./cluster.yaml)
  --state DIR       the lab's state, node trees and captures
                    (default .kube-ipsec/lab next to the config file)
  --prefix NAME     begins every namespace and link name (default kil; 1-8 [a-z0-9])
  --out DIR         up: install this rendered out/ tree instead of rendering
  --pods N          up: pods per minion (default 2)
  --esp MODE        up: auto (default), userspace or kernel
  --lifetimes L     up: short (default: SA lifetimes of ${SHORT_LIFETIMES.lifetime}/${SHORT_LIFETIMES.ikeLifetime}, margin ${SHORT_LIFETIMES.rekeyMargin},
                    so that check sees rekeys) or rendered (cluster.yaml's)
  --vm              up: VMs instead of namespaces (check/status/ssh/down know from the state)
  --memory MB       up --vm: memory of every VM (default: each node's, as
                    cluster.yaml sizes its Vagrant VM)
  --binaries DIR    up --vm: what npm run binaries built (default ./binaries):
                    Kubernetes runs in the VMs; none: the network alone
  --accel A         up --vm: auto (default: KVM if it boots the image), kvm or tcg
  --image-cache DIR up --vm: node images by recipe (default /var/cache/kube-ipsec/images)
  --keep            up: leave a failed lab in place for inspection
  --victim NODE     check: node whose strongSwan fail-closed stops (default: first minion)
  --only LIST       check: comma-separated subset of ${CHECK_NAMES.join(',')}
  --json            check, status: machine-readable output
`;

export async function main(argv: string[]): Promise<number> {
  const o = commandLine(HELP, () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: CLUSTER_OPTIONS.config,
        help: CLUSTER_OPTIONS.help,
        state: { type: 'string' },
        prefix: { type: 'string', default: 'kil' },
        out: { type: 'string' },
        pods: { type: 'string', default: '2' },
        esp: { type: 'string', default: 'auto' },
        lifetimes: { type: 'string', default: 'short' },
        vm: { type: 'boolean', default: false },
        memory: { type: 'string' },
        binaries: { type: 'string' },
        accel: { type: 'string', default: 'auto' },
        'image-cache': { type: 'string' },
        keep: { type: 'boolean', default: false },
        victim: { type: 'string' },
        only: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      allowPositionals: true,
    });
    return { ...values, positionals };
  });
  if (typeof o === 'number') return o;
  const [command, ...extra] = o.positionals;
  if (!command || (extra.length && command !== 'ssh') || !['up', 'check', 'status', 'down', 'ssh'].includes(command)) {
    console.error(`${command ? `unknown command: ${o.positionals.join(' ')}` : 'which command?'}\n\n${HELP}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('the lab needs root (network namespaces, mounts, strongSwan): run it as root, e.g. `sudo npm run lab -- ' + command + '`');
    return 2;
  }
  // The lab's own directory inside the cluster's state dir (.kube-ipsec/lab next to the config).
  const { configFile, stateDir: clusterState } = clusterPaths({ config: o.config, out: 'out' });
  const stateDir = resolve(o.state ?? join(clusterState, 'lab'));
  const only = o.only?.split(',').filter(Boolean) as CheckName[] | undefined;
  const pods = Number(o.pods);
  try {
    validatePrefix(o.prefix);
    if (!['auto', 'userspace', 'kernel'].includes(o.esp)) throw new LabError(`--esp must be auto, userspace or kernel, not ${o.esp}`);
    if (!Number.isInteger(pods) || pods < 1 || pods > 50) throw new LabError(`--pods must be an integer from 1 to 50, not ${o.pods}`);
    const unknown = (only ?? []).filter((n) => !CHECK_NAMES.includes(n));
    if (unknown.length) throw new LabError(`--only: unknown check(s) ${unknown.join(', ')}; known: ${CHECK_NAMES.join(', ')}`);
    const memoryMb = o.memory === undefined ? undefined : Number(o.memory);
    if (memoryMb !== undefined && (!Number.isInteger(memoryMb) || memoryMb < 384 || memoryMb > 16384))
      throw new LabError(`--memory must be MB from 384 to 16384, not ${o.memory}`);
    if (!['short', 'rendered'].includes(o.lifetimes)) throw new LabError(`--lifetimes must be short or rendered, not ${o.lifetimes}`);
    const lifetimes = o.lifetimes as LabLifetimes;
    if (!['auto', 'kvm', 'tcg'].includes(o.accel)) throw new LabError(`--accel must be auto, kvm or tcg, not ${o.accel}`);
    switch (command) {
      case 'up': {
        if (o.vm) {
          if (o.out !== undefined || o.esp !== 'auto')
            throw new LabError('--vm renders the cluster itself with ESP in the kernel: --out and --esp do not apply');
          const vm: VmUpOptions = {
            configFile,
            stateDir,
            prefix: o.prefix,
            podsPerMinion: pods,
            lifetimes,
            accel: o.accel as 'auto' | 'kvm' | 'tcg',
            log: indented,
            ...(memoryMb !== undefined && { memoryMb }),
            ...(o['image-cache'] !== undefined && { imageCache: resolve(o['image-cache']) }),
            ...(o.binaries !== undefined && { built: o.binaries === 'none' ? 'none' : resolve(o.binaries) }),
          };
          return await upCommand({ stateDir, prefix: o.prefix, keep: o.keep }, { what: 'lab up --vm', onVms: true, start: () => vmUp(vm) });
        }
        const ns: UpOptions = {
          configFile,
          stateDir,
          prefix: o.prefix,
          podsPerMinion: pods,
          lifetimes,
          esp: o.esp as EspMode | 'auto',
          log: indented,
          ...(o.out !== undefined && { outDir: resolve(o.out) }),
        };
        return await upCommand({ stateDir, prefix: o.prefix, keep: o.keep }, { what: 'lab up', onVms: false, start: () => up(ns) });
      }
      case 'check': {
        const lab = openLab(stateDir);
        requireUp(lab);
        const r = await check(lab, {
          destructive: 'all',
          ...(o.victim !== undefined && { victim: o.victim }),
          ...(only && { only }),
          ...(!o.json && { onResult: (res) => process.stdout.write(formatResult(res)) }),
        });
        process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatVerdict(r));
        return r.ok ? 0 : 1;
      }
      case 'status': {
        const s = await labStatus(openLab(stateDir));
        process.stdout.write(o.json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
        return 0;
      }
      case 'ssh': {
        const [node, ...argv] = extra;
        const lab = openLab(stateDir);
        requireUp(lab);
        const names = lab.topology.nodes.map((n) => n.name);
        if (!node || !names.includes(node))
          throw new LabError(
            `ssh: ${node ? `no node ${node} in the lab` : 'which node?'} (nodes: ${names.join(', ')}); e.g. npm run lab -- ssh ${names[0]} -- kubectl get nodes`,
          );
        return runOnNode(lab.backend.onNode(node, argv.length ? argv : ['bash', '-l']), argv.length === 0);
      }
      case 'down': {
        const r = await down(stateDir);
        if (!r.found) console.log(`no lab recorded in ${stateDir}: nothing to do`);
        else if (r.taps)
          console.log(
            `lab down: stopped ${r.processes.stopped.length} processes (VMs, ssh), deleted ${r.taps.length} taps, ${r.namespaces.length} namespaces and ${r.overlays?.length ?? 0} overlays`,
          );
        else console.log(`lab down: stopped ${r.processes.stopped.length} processes, deleted ${r.podsDeleted} pods and ${r.namespaces.length} namespaces`);
        for (const w of r.warnings) console.error(`warning: ${w}`);
        return r.warnings.length ? 1 : 0;
      }
    }
    return 2;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof LabError || err instanceof CheckError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
}

/** `up`'s progress lines, under the command's own. */
const indented = (line: string) => console.log(`  ${line}`);

/**
 * Runs `up` (either backend) and reports its time. A failed `up` removes only what this run
 * recorded (an existing lab is never touched), unless --keep leaves it for inspection.
 */
async function upCommand(
  o: { stateDir: string; prefix: string; keep: boolean },
  run: { what: string; onVms: boolean; start: () => Promise<unknown> },
): Promise<number> {
  const elapsed = timer();
  const existed = readState(o.stateDir) !== undefined;
  try {
    await run.start();
  } catch (err) {
    if (existed || readState(o.stateDir) === undefined) throw err;
    console.error(`${run.what} failed: ${(err as Error).message}`);
    if (o.keep) {
      const consoles = run.onVms ? `, consoles in ${o.stateDir}/vms/*/console.log` : '';
      console.error(`left in place for inspection (state ${o.stateDir}${consoles}); remove it with: npm run lab -- down --state ${o.stateDir}`);
    } else {
      const r = await down(o.stateDir);
      const taps = r.taps ? `${r.taps.length} taps, ` : '';
      console.error(
        `removed what it had created (${r.processes.stopped.length} processes, ${taps}${r.namespaces.length} namespaces); --keep leaves it for inspection`,
      );
    }
    return 1;
  }
  console.log(`lab ${o.prefix} up${run.onVms ? ' on VMs' : ''} in ${elapsed().toFixed(1)} s (state ${o.stateDir}); next: npm run lab -- check`);
  return 0;
}

/**
 * A command on a lab node with this terminal (as `vagrant ssh -c` runs one); its exit status is
 * the command's. Without a command, a login shell, with a terminal when this one has one.
 */
function runOnNode(argv: string[], interactive: boolean): number {
  const i = argv.indexOf('ssh');
  const withTty = interactive && process.stdin.isTTY && i >= 0 ? [...argv.slice(0, i + 1), '-t', ...argv.slice(i + 1)] : argv;
  const r = spawnSync(withTty[0]!, withTty.slice(1), { stdio: 'inherit' });
  return r.status ?? 1;
}
