import { writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { loadClusterFile } from './src/config/load.ts';
import { planCluster } from './src/plan/plan.ts';
import { ensurePki } from './src/pki/issue.ts';
import { directoryStore } from './src/pki/store.ts';
import { renderCluster } from './src/render/index.ts';
import { loadTemplates } from './src/render/templates.ts';
import { outputTree, writeOutput } from './src/render/output.ts';
import { bigClusterYaml } from './test/helpers/cluster.ts';
import { webcrypto } from 'node:crypto';
const d = '/tmp/b254fixed';
if (!existsSync(d)) { (await import('node:fs')).mkdirSync(d); writeFileSync(`${d}/cluster.yaml`, bigClusterYaml(254)); }
for (let i = 0; i < 2; i++) {
let t = performance.now(); const lap = (l: string) => { console.log(l, Math.round(performance.now() - t)); t = performance.now(); };
const c = loadClusterFile(`${d}/cluster.yaml`); lap('load');
const p = planCluster(c); lap('plan');
const { materials } = await ensurePki(p, directoryStore(`${d}/state`), { now: new Date(), random: (n) => webcrypto.getRandomValues(new Uint8Array(n)) }); lap('pki');
const tpl = loadTemplates(); lap('templates');
const r = renderCluster(p, materials, tpl); lap('render');
const tree = outputTree(r); lap('tree');
const w = writeOutput(`${d}/out`, tree); lap('write ' + w.written.length);
}
