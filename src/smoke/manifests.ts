// What `kube-ipsec smoke` creates (pure): a namespace of its own, one pod per minion (the
// pinned smoke image, agnhost `netexec`, serving HTTP on 8080 and answering /hostname with the
// pod's name), a ClusterIP Service over them and a NodePort Service. Everything carries the
// run's label, so one `kubectl delete namespace` removes all of it.
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IService } from 'kubernetes-models/v1/Service';
import { stringify } from 'yaml';
import type { Plan } from '../plan/plan.ts';

export const SMOKE_PORT = 8080;
export const SERVICE_PORT = 80;
const APP_LABEL = 'kube-ipsec-smoke';

export interface SmokeRun {
  namespace: string;
  /** minion name → pod name. */
  pods: Map<string, string>;
  service: string;
  nodePortService: string;
}

/** Names of one run; `id` makes parallel or leftover runs distinct (lowercase letters and digits). */
export function smokeRun(plan: Plan, id: string): SmokeRun {
  return {
    namespace: `kube-ipsec-smoke-${id}`,
    pods: new Map(plan.minions.map((m) => [m.name, `smoke-${m.name}`])),
    service: 'smoke',
    nodePortService: 'smoke-nodeport',
  };
}

/** The FQDN of the run's Service, which every pod must resolve through cluster DNS. */
export function serviceName(plan: Plan, run: SmokeRun): string {
  return `${run.service}.${run.namespace}.svc.${plan.cluster.domain}`;
}

export function smokeObjects(plan: Plan, run: SmokeRun): (INamespace | IPod | IService)[] {
  const labels = { app: APP_LABEL, 'app.kubernetes.io/managed-by': 'kube-ipsec' };
  const ns: INamespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: run.namespace, labels } };
  const pods: IPod[] = [...run.pods].map(([node, name]) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: run.namespace, labels: { ...labels, 'kube-ipsec/node': node } },
    spec: {
      // Placed by the scheduler (nodeSelector, not nodeName), so the scheduler is tested too.
      nodeSelector: { 'kubernetes.io/hostname': node },
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'netexec',
          image: plan.images.smoke.ref,
          imagePullPolicy: 'IfNotPresent',
          args: ['netexec', `--http-port=${SMOKE_PORT}`],
          ports: [{ name: 'http', containerPort: SMOKE_PORT, protocol: 'TCP' }],
          readinessProbe: { tcpSocket: { port: SMOKE_PORT }, periodSeconds: 2 },
        },
      ],
    },
  }));
  const service = (name: string, type: 'ClusterIP' | 'NodePort'): IService => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: run.namespace, labels },
    spec: { type, selector: { app: APP_LABEL }, ports: [{ name: 'http', port: SERVICE_PORT, targetPort: SMOKE_PORT, protocol: 'TCP' }] },
  });
  return [ns, ...pods, service(run.service, 'ClusterIP'), service(run.nodePortService, 'NodePort')];
}

/**
 * The run's objects in the order the API server takes them: the Namespace alone first, because
 * pods are refused until its `default` ServiceAccount exists, which the controller-manager
 * creates moments after the Namespace ("error looking up service account … not found").
 */
export function smokeYamlSteps(plan: Plan, run: SmokeRun): { namespace: string; workload: string } {
  const objects = smokeObjects(plan, run);
  return { namespace: toYaml(objects.filter((o) => o.kind === 'Namespace')), workload: toYaml(objects.filter((o) => o.kind !== 'Namespace')) };
}

function toYaml(objects: object[]): string {
  return objects.map((o) => stringify(o)).join('---\n');
}
