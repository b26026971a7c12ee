import { defineConfig } from 'vitest/config';

// One project per test tier (the directory under test/ is the tier; a file's name starts with
// the module it tests). `npm run test:unit` needs nothing but Node.js; the other tiers need
// root and the packages scripts/test-deps installs (CONTRIBUTING.md). The VM and Vagrant
// tiers take minutes per step and have configs of their own (vitest.vm/vagrant.config.ts).
const tier = (name: string, over: { testTimeout?: number; hookTimeout?: number } = {}) => ({
  extends: true as const,
  test: { name, include: [`test/${name}/**/*.test.ts`], ...over },
});

export default defineConfig({
  test: {
    // Integration and e2e tests drive real kernel objects (namespaces, bridges, strongSwan,
    // etcd, sshd). Each test names what it creates with its own prefix, so files may run in
    // parallel; two workers match the two cores CI has.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [tier('unit'), tier('integration'), tier('e2e'), tier('security')],
  },
});
