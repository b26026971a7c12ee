// The namespace lab's backend: nodes are network namespaces on this host, each with its
// own view of the file system (node-view.ts) joined through the holder process `up` left.
import type { ClusterBackend } from '../check/target.ts';
import { LabError } from './host.ts';
import { localBackground, localCapture } from './local.ts';
import { inNetns } from './network.ts';
import { inNode, type NodeView } from './node-view.ts';
import { isOurs } from './procs.ts';
import type { Runner } from '../run.ts';
import type { LabState } from './state.ts';
import { startNodeStrongswan } from './start.ts';
import { stopStrongswan, strongswanProcesses } from './strongswan.ts';
import { nodeNamed, type LabTopology } from './topology.ts';

export interface NetnsParts {
  state: LabState;
  topology: LabTopology;
  views: Map<string, NodeView>;
  runner: Runner;
}

export function netnsBackend(lab: NetnsParts): ClusterBackend {
  const view = (node: string): NodeView => {
    const v = lab.views.get(node);
    if (!v) throw new Error(`no node ${node} in the lab`);
    if (!v.holder) throw new LabError(`the view of ${node} is not running (its holder process is gone): bring the lab down and up again`);
    return v;
  };
  return {
    kind: 'netns',
    systemd: false,
    onNode: (node, argv) => inNode(view(node), argv),
    inNs: (ns, argv) => inNetns(ns, argv),
    capture: (ns, dev, name, filter) => localCapture(lab.state, lab.runner, ns, dev, name, filter),
    captureUnderlay: (name, filter) => localCapture(lab.state, lab.runner, lab.topology.wire.ns, lab.topology.wire.bridge, name, filter),
    background: (ns, argv, what) => localBackground(lab.state, ns, argv, what),
    async startStrongswan(node) {
      view(node);
      await startNodeStrongswan(lab, nodeNamed(lab.topology, node));
    },
    async stopStrongswan(node) {
      await stopStrongswan(lab.runner, view(node));
      for (const p of lab.state.data.processes.filter((x) => x.role === 'strongswan' && x.node === node)) lab.state.removeProcess(p.pid);
    },
    async strongswanState(node) {
      const ns = nodeNamed(lab.topology, node).ns;
      const pids = strongswanProcesses(lab.views.get(node)!)
        .filter((p) => isOurs({ ...p, ns, role: 'strongswan', what: '' }))
        .map((p) => p.pid);
      return { pids, detail: pids.length ? `running (pids ${pids.join(' ')})` : 'STOPPED' };
    },
    requireUp() {
      const dead = lab.topology.nodes.filter((n) => !lab.views.get(n.name)?.holder);
      if (dead.length)
        throw new LabError(`the lab's node views of ${dead.map((n) => n.name).join(', ')} are gone: run \`npm run lab -- down\`, then \`up\` again`);
    },
  };
}
