import { defineConfig } from 'vitest/config';

// The Vagrant end-to-end test (npm run test:vagrant): `vagrant up --provision` of a master
// and two minions with vagrant-libvirt under software emulation, in a libvirt sandbox of its
// own. One file, one cluster at a time on a 2-core machine; minutes per step.
export default defineConfig({
  test: {
    include: ['test/vagrant/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 20 * 60_000,
    hookTimeout: 10 * 60_000,
    reporters: ['default'],
  },
});
