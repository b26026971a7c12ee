// Runs `up` and hangs it at strongSwan's start on the second node, then says "crash point"
// for the parent test to SIGKILL this process — a crash in the middle of `up`, with node
// views running and no pods. Mode `settled`: the other nodes' `ipsec start` have returned
// first (their starters are detached daemons, they outlive the crash); mode `in-flight`:
// the crash comes while those starts still run.
import { up } from '../../src/lab/up.ts';
import { processRunner, type Runner } from '../../src/run.ts';

const [configFile, stateDir, prefix, plugin, mode] = process.argv.slice(2) as [string, string, string, string, 'settled' | 'in-flight'];
let calls = 0;
const others: Promise<unknown>[] = [];
const runner: Runner = {
  run(argv, opts) {
    if (argv.at(-2) !== 'ipsec' || argv.at(-1) !== 'start') return processRunner.run(argv, opts);
    if (++calls !== 2) {
      const r = processRunner.run(argv, opts);
      others.push(r);
      return r;
    }
    void (async () => {
      if (mode === 'settled') {
        while (others.length < 3) await new Promise((r) => setTimeout(r, 10));
        await Promise.all(others);
      }
      process.stdout.write('crash point\n');
    })();
    return new Promise(() => {});
  },
};
await up({ configFile, stateDir, prefix, plugin, runner });
process.stdout.write('up finished: the crash point was never reached\n');
