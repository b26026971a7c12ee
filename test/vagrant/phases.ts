// Where the time of a `vagrant up --provision` goes, per machine, read from Vagrant's own
// output lines stamped on arrival (pure). The markers are Vagrant 2.3's and vagrant-libvirt
// 0.11's messages:
//   box import    "Uploading base box image as volume into Libvirt storage..." → "Creating image (snapshot of base box volume)."
//   boot          "Starting domain." → "Machine booted and ready!" (DHCP lease, sshd, Vagrant's key swapped in)
//   configure     → the first "Running provisioner:" (hostname, the private network)
//   provisioning  the first "Running provisioner:" → the machine's last line
// Lines of a parallel `up` interleave; each names its machine ("==> master: …", "    master: …").

export interface StampedLine {
  /** Seconds since the command started. */
  t: number;
  line: string;
}

export interface MachinePhases {
  machine: string;
  /** Seconds; absent when the phase did not happen (a box already in the pool, no provisioner). */
  boxImport?: number;
  boot?: number;
  configure?: number;
  provisioning?: number;
  /** When the machine's first and last lines came (seconds since the command started). */
  first: number;
  last: number;
}

const MACHINE_LINE = /^(?:==> |    )([A-Za-z0-9][A-Za-z0-9_.-]*): (.*)$/;

/** Vagrant's output without colours, progress redraws (\r…\e[K) and blank lines. */
export function cleanLines(chunk: string): string[] {
  return (
    chunk
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the colour codes removed here.
      .replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
      .split('\n')
      .map((l) => l.split('\r').pop()!.trimEnd())
      .filter((l) => l.trim() !== '')
  );
}

export function machinePhases(lines: StampedLine[]): MachinePhases[] {
  const byMachine = new Map<string, { t: number; text: string }[]>();
  for (const { t, line } of lines) {
    const m = MACHINE_LINE.exec(line);
    if (!m) continue;
    const list = byMachine.get(m[1]!) ?? [];
    list.push({ t, text: m[2]! });
    byMachine.set(m[1]!, list);
  }
  return [...byMachine].map(([machine, ls]) => {
    const at = (re: RegExp) => ls.find((l) => re.test(l.text))?.t;
    const span = (from?: number, to?: number) => (from !== undefined && to !== undefined && to >= from ? to - from : undefined);
    const upload = at(/^Uploading base box image as volume into Libvirt storage/);
    const snapshot = at(/^Creating image \(snapshot of base box volume\)/);
    const start = at(/^Starting domain\.$/);
    const ready = at(/^Machine booted and ready!$/);
    const provision = at(/^Running provisioner: /);
    const first = ls[0]!.t;
    const last = ls[ls.length - 1]!.t;
    const phases: MachinePhases = { machine, first, last };
    const set = (k: 'boxImport' | 'boot' | 'configure' | 'provisioning', v: number | undefined) => v !== undefined && (phases[k] = v);
    set('boxImport', span(upload, snapshot));
    set('boot', span(start, ready));
    set('configure', span(ready, provision));
    set('provisioning', span(provision, last));
    return phases;
  });
}
