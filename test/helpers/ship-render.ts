// Renders a cluster in memory (no out/, no state dir) for tests of what shipping reads
// from a node's tree. Deterministic randomness keeps re-renders of one YAML identical.
import { parseCluster } from '../../src/config/load.ts';
import { ensurePki } from '../../src/pki/issue.ts';
import { memoryStore, type PkiStore } from '../../src/pki/store.ts';
import { planCluster, type Plan } from '../../src/plan/plan.ts';
import { renderCluster, type RenderedCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';

export const FOUR_NODES = `
nodes:
  - { name: master, role: master, ip: 192.168.10.10 }
  - { name: minion1, ip: 192.168.10.21 }
  - { name: minion2, ip: 192.168.10.22 }
  - { name: minion3, ip: 192.168.10.23 }
`;

export async function renderYaml(yaml: string, store: PkiStore = memoryStore()): Promise<{ plan: Plan; cluster: RenderedCluster }> {
  const plan = planCluster(parseCluster(yaml));
  let counter = 0;
  const { materials } = await ensurePki(plan, store, {
    now: new Date('2026-01-01T00:00:00Z'),
    random: (n) => Uint8Array.from({ length: n }, () => counter++ & 0xff),
  });
  return { plan, cluster: renderCluster(plan, materials, loadTemplates()) };
}
