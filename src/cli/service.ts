/**
 * `broker service install|uninstall`: runs `broker serve` under systemd, as a user
 * unit (the default) or a system unit (--system), sandboxed as tightly as the
 * Bun runtime allows. The unit's text is in service/unit.ts, the systemctl calls in
 * service/systemctl.ts, the two commands in service/install.ts and uninstall.ts,
 * loaded only when they run.
 */
import type { Command } from 'commander';
import { EXIT } from './exit-codes.ts';
import type { Io } from './io.ts';
import type { ServiceInstallFlags } from './service/install.ts';
import { SYSTEM_UNIT_DIR } from './service/unit.ts';

/** Registers `broker service install|uninstall` (one call from main.ts). */
export function registerServiceCommand(program: Command, io: Io): void {
  const service = program.command('service').description('run `broker serve` as a systemd service (user unit, or --system)');
  service
    .command('install')
    .description('write a sandboxed systemd unit for `broker serve`, then enable and start it')
    .option('--system', `a system unit in ${SYSTEM_UNIT_DIR} (needs root) instead of a user unit in ~/.config/systemd/user`)
    .option('--print', 'only print the unit; change nothing')
    .option('--user <name>', 'with --system: the account it runs as (default: the user who ran sudo)')
    .option('--binary <path>', 'the broker binary for ExecStart (default: this one)')
    .option('--credential-file <path>', 'give the service the client secret from this file (LoadCredential=client-secret:PATH)')
    .option('--database-password-file <path>', "give the service the PostgreSQL user's password from this file (LoadCredential=database-password:PATH)")
    .addHelpText('after', `\nExit codes of the service: ${EXIT.config} (configuration) is never restarted; fix it with \`broker init\`.`)
    .action(async (flags: ServiceInstallFlags) => (await import('./service/install.ts')).serviceInstall(flags, io));
  service
    .command('uninstall')
    .description('stop and disable the service, and remove its unit (settings and connections stay)')
    .option('--system', `the system unit in ${SYSTEM_UNIT_DIR}`)
    .action(async (flags: { system?: boolean }) => (await import('./service/uninstall.ts')).serviceUninstall(flags, io));
}
