// The checks only a VM lab has, in the order `check` runs them around the shared ones:
// kernel ESP and the units before fail-closed; re-provisioning and the reboot, which change
// the running cluster, after it.
import type { CheckOptions } from '../check.ts';
import type { Lab } from '../lab.ts';
import type { CheckResult, VmCheckName } from '../report.ts';
import { checkKernelEsp } from './checks/kernel-esp.ts';
import { checkReboot } from './checks/reboot.ts';
import { checkReprovision } from './checks/reprovision.ts';
import { checkUnits } from './checks/units.ts';

export interface VmCheck {
  name: VmCheckName;
  run(lab: Lab, opts: CheckOptions): Promise<CheckResult>;
}

export const beforeFailClosed: VmCheck[] = [
  { name: 'kernel-esp', run: (lab) => checkKernelEsp(lab) },
  { name: 'units', run: (lab) => checkUnits(lab) },
];

export const afterFailClosed: VmCheck[] = [
  { name: 'reprovision', run: (lab, opts) => checkReprovision(lab, opts) },
  { name: 'reboot', run: (lab, opts) => checkReboot(lab, opts) },
];
