import { Command, CommanderError } from 'commander';
import { brokerHome } from '../config/home.ts';
import { VERSION } from '../version.ts';
import { EXIT } from './exit-codes.ts';
import { failed } from './failed.ts';
import { sayError } from './voice.ts';
import { addOptions } from './flags.ts';
// Each command's module is imported when it runs, so `--help` and `list` do not
// pay for libsodium, the HTTP server, metrics and the wizard.
import { processIo, type Io } from './io.ts';
import { registerServiceCommand } from './service.ts';

/** Runs the CLI and returns the exit code; bin/broker.ts only sets it. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  // Files the broker creates are for its user only, whatever the shell's umask.
  process.umask(0o077);
  const program = new Command()
    .name('broker')
    .description('A private OAuth token broker for unattended backups (OneDrive).')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
      // commander says `error: unknown option '--x'`; put it in the CLI's one voice.
      outputError: (s) => sayError(io, s.replace(/^error: /, '').replace(/\n$/, ''), 'run `broker --help` for usage'),
      // commander's defaults ask process.stdout, whose first use loads Node's stream modules (about 4 ms of
      // `broker --help`): the help has no colours, and it is as wide as $COLUMNS says, else 80.
      getOutHasColors: () => false,
      getErrHasColors: () => false,
      getOutHelpWidth: () => helpWidth(io.env),
      getErrHelpWidth: () => helpWidth(io.env),
    })
    .addHelpText('after', `\nSettings and store live in BROKER_HOME (now: ${brokerHome(io.env)}).`);

  const init = program
    .command('init')
    .description('set up the broker: your Entra app, public URL, listen address, connect passcode')
    .option('--non-interactive', 'never prompt; take answers from flags and BROKER_* variables');
  // Its options, and serve's, come from the one table in config/options.ts. Dozens of
  // options cost commander milliseconds to register: only when the command is named
  // (to run it, or in `help init`); `broker --help` lists commands, not their options.
  const named = (name: string) => argv.includes(name);
  (named('init') ? addOptions(init, 'init') : init).action(async (flags) => (await import('./init.ts')).initCommand(flags, io));

  const serve = program
    .command('serve')
    .description('run the HTTP server in the foreground (stops cleanly on SIGTERM/SIGINT; SIGHUP re-reads the settings and TLS files)');
  (named('serve') ? addOptions(serve, 'serve') : serve).action(async (flags) => (await import('./serve.ts')).serveCommand(flags, io));

  let exitCode: number = EXIT.ok;
  program
    .command('connect')
    .description('connect an account from the command line: open the printed URL anywhere, paste back the final address')
    .option('--service <id>', 'onedrivev2 (default), sharepoint or msgroup')
    .action(async (flags) => (await import('./connect.ts')).connectCommand(flags, io));

  program
    .command('doctor')
    .description('check settings, permissions, the store, and that Microsoft accepts the app')
    .action(async () => {
      exitCode = await (await import('./doctor.ts')).doctorCommand(io);
    });

  program
    .command('list')
    .description('show the connections (no secrets)')
    .option('--json', 'print a JSON array')
    .action(async (flags) => (await import('./list.ts')).listCommand(brokerHome(io.env), io, flags));

  program
    .command('revoke')
    .description('end a connection for good, at once (also while serve runs)')
    .argument('<keyid-or-authid>', 'the keyid from `broker list`, the whole AuthID, or "-" to read either from stdin (keeps an AuthID out of shell history)')
    .action(async (target: string) => {
      const text = target === '-' ? (await io.readStdin()).trim() : target;
      exitCode = await (await import('./revoke.ts')).revokeCommand(brokerHome(io.env), io, text);
    });

  program
    .command('backup')
    .description('copy the settings and the store into FILE, consistently, also while serve runs (holds the app secret; no AuthID)')
    .argument('<file>', 'the backup file to write (0600)')
    .option('--force', 'replace FILE if it exists')
    .action(async (file: string, flags) => (await import('./backup.ts')).backupCommand(brokerHome(io.env), io, file, flags));

  program
    .command('restore')
    .description('put the settings and connections from a `broker backup` FILE into BROKER_HOME (serve must be stopped)')
    .argument('<file>', 'a file made by `broker backup`')
    .option('--force', 'replace existing settings and connections')
    .action(async (file: string, flags) => (await import('./backup.ts')).restoreCommand(brokerHome(io.env), io, file, flags));

  program
    .command('store')
    .description('the store: `store migrate --to` copies it to PostgreSQL or back to a SQLite file')
    .command('migrate')
    .description('copy every connection into an empty store (serve stopped): AuthIDs keep working')
    .requiredOption('--to <url-or-file>', 'postgres://USER@HOST:PORT/DB (password: URL, PGPASSWORD), or a SQLite file path')
    .action(async (flags: { to: string }) => (await import('./store-migrate.ts')).storeMigrateCommand(brokerHome(io.env), io, flags));

  program
    .command('notify')
    .description('notifications to the owner (see --notify-url, --notify-command)')
    .command('test')
    .description('send a test notification to every target and report each result')
    .action(async () => {
      exitCode = await (await import('./notify.ts')).notifyTestCommand(brokerHome(io.env), io);
    });

  registerServiceCommand(program, io);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    return failed(err, io);
  }
}

function helpWidth(env: Record<string, string | undefined>): number {
  const columns = Number(env.COLUMNS);
  return Number.isInteger(columns) && columns >= 40 && columns <= 500 ? columns : 80;
}
