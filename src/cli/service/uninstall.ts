/** `broker service uninstall`: stop and disable first, then remove the unit. */
import { existsSync, rmSync } from 'node:fs';
import { BrokerError } from '../../errors.ts';
import type { Io } from '../io.ts';
import { runSystemctl } from './systemctl.ts';
import { UNIT_NAME, unitPathFor, type UnitMode } from './unit.ts';

export async function serviceUninstall(flags: { system?: boolean }, io: Io): Promise<void> {
  const mode: UnitMode = flags.system ? 'system' : 'user';
  const unitPath = unitPathFor(mode, io.env);
  if (!existsSync(unitPath)) {
    io.out(`No ${unitPath}; nothing to uninstall.`);
    return;
  }
  // Stop and disable first: `disable` needs the unit file to find its links, so when
  // systemctl cannot do it the file stays, and the person gets all three steps.
  const base = mode === 'user' ? 'systemctl --user' : 'systemctl';
  try {
    runSystemctl(mode, [['disable', '--now', UNIT_NAME]], 'Nothing was removed');
  } catch (e) {
    const b = e as BrokerError;
    throw new BrokerError(b.code, b.message, {
      cause: b,
      hint: `Run these by hand${mode === 'system' ? ' (as root)' : ''}:\n  ${base} disable --now ${UNIT_NAME}\n  rm ${unitPath}\n  ${base} daemon-reload`,
    });
  }
  try {
    rmSync(unitPath);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new BrokerError('store_error', `Stopped the service, but cannot remove ${unitPath} (${code}).`, {
      cause: e,
      hint: `Remove it by hand, then run \`${base} daemon-reload\`.`,
    });
  }
  io.out(`Removed ${unitPath}.`);
  runSystemctl(mode, [['daemon-reload']], `Stopped the service and removed ${unitPath}`);
  io.out('Stopped and disabled broker.service. The settings and connections in BROKER_HOME are untouched.');
}
