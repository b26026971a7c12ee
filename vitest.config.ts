import { defineConfig } from 'vitest/config';

// Integration and e2e tests drive real kernels objects (namespaces, bridges, strongSwan,
// etcd, sshd). Each test names what it creates with its own prefix, so files may run in
// parallel; two workers match the two cores CI has.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real VMs take minutes: their own commands (npm run test:vm, test:vagrant; vitest.vm/vagrant.config.ts), which CI runs too.
    exclude: ['test/vm/**', 'test/vagrant/**', '**/node_modules/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
