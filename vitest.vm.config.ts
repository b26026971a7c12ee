import { defineConfig } from 'vitest/config';

// The VM lab's end-to-end test (npm run test:vm): one file, one lab of three qemu VMs at a
// time on a 2-core machine, its own budget (the acceptance is 15 minutes).
export default defineConfig({
  test: {
    include: ['test/vm/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 15 * 60_000,
    hookTimeout: 5 * 60_000,
    reporters: ['default'],
  },
});
