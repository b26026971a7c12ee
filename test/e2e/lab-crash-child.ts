// Runs `up` and hangs it when strongSwan starts on the second node: the lab is then half
// built (namespaces, node views, some charons, no pods) when the parent test SIGKILLs this
// process — a crash in the middle of `up`.
import { up } from '../../src/lab/up.ts';
import { processRunner, type Runner } from '../../src/lab/run.ts';

const [configFile, stateDir, prefix, plugin] = process.argv.slice(2) as [string, string, string, string];
let starts = 0;
const runner: Runner = {
  run(argv, opts) {
    if (argv.at(-2) === 'ipsec' && argv.at(-1) === 'start' && ++starts === 2) {
      process.stdout.write('crash point\n');
      return new Promise(() => {});
    }
    return processRunner.run(argv, opts);
  },
};
await up({ configFile, stateDir, prefix, plugin, runner });
process.stdout.write('up finished: the crash point was never reached\n');
