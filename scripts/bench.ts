// `npm run bench [suite…] [--options]`: every bench/<suite>.ts exports `run(argv)`; no suite
// runs all of them. The benchmarks are development tools that share the tests' helpers, so
// they live outside the product: neither the kube-ipsec command nor its bundle imports them.
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

type Suite = { run: (argv: string[]) => Promise<number> };

const dir = fileURLToPath(new URL('../bench/', import.meta.url));

async function main(argv: string[]): Promise<number> {
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length) {
    console.error(`unknown bench suite(s): ${unknown.join(', ')}; available: ${all.join(', ')}`);
    return 2;
  }
  let status = 0;
  for (const suite of wanted.length ? wanted : all) {
    const mod = (await import(pathToFileURL(`${dir}${suite}.ts`).href)) as Suite;
    console.log(`\n== bench ${suite} ==`);
    status ||= await mod.run(argv.filter((a) => a.startsWith('-')));
  }
  return status;
}

process.exitCode = await main(process.argv.slice(2));
