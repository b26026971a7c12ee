// The API server as the add-on script sees it through kubectl, emulated for the script's
// unit tests: authorization as RBAC decides it for the two credentials on the master, and
// the Secrets that `replace` rewrites. Behaviour copied from kubectl v1.37
// (staging/src/k8s.io/kubectl/pkg/cmd/auth/cani.go: `auth can-i` prints yes/no and exits 1
// on no; `replace` prints "<kind>/<name> replaced"; `get --no-headers` with nothing prints
// "No resources found" on stderr) and from the API server's default policy (system:masters
// is cluster-admin; kubeadm:cluster-admins only once its ClusterRoleBinding exists).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { PATHS } from '../../src/plan/paths.ts';

export interface FakeCluster {
  dir: string;
  /** Every kubectl call: [kubeconfig, ...rest of argv]. */
  calls(): string[][];
  /** Whether admin.conf's ClusterRoleBinding exists. */
  adminBound(): boolean;
  /** Names of the Secrets `replace` rewrote, every time. */
  replaced(): string[];
  /** Runs the rendered script with its paths pointed into this directory. */
  run(script: string): { status: number | null; stdout: string; stderr: string };
  cleanup(): void;
}

export function fakeCluster(options: { secrets: string[]; encryptionConfig: string }): FakeCluster {
  const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-kubectl-'));
  const kubectl = join(dir, 'kubectl');
  writeFileSync(join(dir, 'secrets'), options.secrets.map((s) => `${s}\n`).join(''));
  writeFileSync(join(dir, 'encryption-config.yaml'), options.encryptionConfig);
  writeFileSync(
    kubectl,
    `#!/bin/bash
dir=${dir}
kc=\${1#--kubeconfig=}; shift
printf '%s' "$kc" >> "$dir/calls"; printf '\\t%s' "$@" >> "$dir/calls"; echo >> "$dir/calls"
allowed() { [ "$kc" = "$dir/super-admin.conf" ] || { [ "$kc" = "$dir/admin.conf" ] && [ -e "$dir/bound" ]; }; }
args=" $* "
case "$args" in
	*" get --raw=/readyz "*) echo ok; exit 0 ;;
	*" auth can-i "*) if allowed; then echo yes; exit 0; else echo no; exit 1; fi ;;
esac
allowed || { echo "Error from server (Forbidden): User \\"kubernetes-admin\\" cannot do that" >&2; exit 1; }
case "$args" in
	*" apply "*) case "$args" in *"00-cluster-admins.yaml"*) touch "$dir/bound" ;; esac; echo "applied"; exit 0 ;;
	*" get secrets --all-namespaces --no-headers "*) [ -s "$dir/secrets" ] || { echo "No resources found" >&2; exit 0; }; sed 's/^/default /' "$dir/secrets"; exit 0 ;;
	*" get secrets --all-namespaces -o json "*) echo '{"kind":"List","items":[]}'; exit 0 ;;
	*" replace -f - "*) cat > /dev/null; sed 's|^|secret/|; s|$| replaced|' "$dir/secrets" | tee -a "$dir/replaced"; exit 0 ;;
esac
echo "fake kubectl: unexpected call: $*" >&2; exit 2
`,
  );
  chmodSync(kubectl, 0o755);
  const lines = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean) : []);
  return {
    dir,
    calls: () => lines('calls').map((l) => l.split('\t')),
    adminBound: () => existsSync(join(dir, 'bound')),
    replaced: () => lines('replaced').map((l) => l.replace(/^secret\/| replaced$/g, '')),
    run(script) {
      // The script's own paths, pointed here; everything else runs as rendered.
      const pointed = script
        .replace(/^kubectl=.*$/m, `kubectl=${kubectl}`)
        .replace(/^admin=.*$/m, `admin=${dir}/admin.conf`)
        .replace(/^super_admin=.*$/m, `super_admin=${dir}/super-admin.conf`)
        .replace(/^config=.*$/m, `config=${dir}/encryption-config.yaml`)
        .replace(/^stamp=.*$/m, `stamp=${dir}/state/${PATHS.secretsRewrittenStamp.split('/').pop()}`);
      for (const name of ['kubectl', 'admin', 'super_admin', 'config', 'stamp'])
        if (!new RegExp(`^${name}=`, 'm').test(script)) throw new Error(`the add-on script sets no ${name}=`);
      writeFileSync(join(dir, 'apply-addons'), pointed, { mode: 0o755 });
      const r = spawnSync('bash', [join(dir, 'apply-addons')], { encoding: 'utf8', timeout: 60_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
