// What every renderer receives: the plan, the issued material, the templates, and the
// view fields every template can use.
import type { PkiMaterials } from '../pki/issue.ts';
import { PATHS, UNITS } from '../plan/paths.ts';
import type { Plan, PlannedNode } from '../plan/plan.ts';
import { GENERATED } from './files.ts';
import type { TemplateSet } from './templates.ts';

export interface RenderContext {
  plan: Plan;
  pki: PkiMaterials;
  templates: TemplateSet;
}

/** Units of the node's container runtime, in start order. */
export function runtimeUnits(plan: Plan, node: PlannedNode): string[] {
  if (!node.runsPods) return [];
  return plan.runtime === 'docker' ? [UNITS.docker, UNITS.criDockerSocket, UNITS.criDockerService] : [UNITS.containerd];
}

/** The unit the kubelet needs to reach the CRI endpoint. */
export function criUnit(plan: Plan): string {
  return plan.runtime === 'docker' ? UNITS.criDockerService : UNITS.containerd;
}

/** Fields shared by every template of a node. */
export function baseView(ctx: RenderContext, node: PlannedNode) {
  return {
    generated: GENERATED,
    node,
    network: ctx.plan.network,
    ipsec: ctx.plan.ipsec,
    units: UNITS,
    paths: PATHS,
    runsPods: node.runsPods,
    runtimeUnits: runtimeUnits(ctx.plan, node),
    // The node network orders itself before the runtime's services, never before a socket: a
    // socket is before sockets.target, itself before basic.target, which this (ordinary)
    // service comes after. That cycle made systemd drop cri-docker.socket at boot, and with
    // it cri-dockerd and the kubelet (seen live after a reboot).
    runtimeServices: runtimeUnits(ctx.plan, node).filter((u) => !u.endsWith('.socket')),
  };
}

export function render(ctx: RenderContext, targetPath: string, view: object): string {
  return ctx.templates.get(targetPath)(view);
}
