/** `broker service install`: checks, writes the unit, then has systemctl enable and start it. */
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { brokerHome } from '../../config/home.ts';
import { settingsExist } from '../../config/settings.ts';
import { BrokerError } from '../../errors.ts';
import type { Io } from '../io.ts';
import { sayWarning } from '../voice.ts';
import { lookupUser } from './account.ts';
import { runSystemctl } from './systemctl.ts';
import { checkUnitPath, renderUnit, UNIT_NAME, under, unitPathFor, type UnitMode } from './unit.ts';

export interface ServiceInstallFlags {
  system?: boolean;
  print?: boolean;
  user?: string;
  binary?: string;
  credentialFile?: string;
  databasePasswordFile?: string;
}

/** The broker that is running now: the compiled binary, or bun plus the script when run from source. */
function runningBroker(): string[] {
  const exe = process.execPath;
  const script = process.argv[1];
  if (/^(bun|node)(\.exe)?$/.test(basename(exe)) && script && !script.startsWith('/$bunfs/')) return [exe, resolve(script)];
  return [exe];
}

export async function serviceInstall(flags: ServiceInstallFlags, io: Io): Promise<void> {
  const mode: UnitMode = flags.system ? 'system' : 'user';
  const { user, group, home } = whoAndWhere(mode, flags, io);
  checkHome(home, flags, io);
  const exec = flags.binary ? [checkUnitPath('--binary', resolve(flags.binary))] : runningBroker().map((p) => checkUnitPath('The broker binary', p));
  if (flags.binary && !flags.print && !existsSync(exec[0]!)) throw new BrokerError('usage', `--binary ${exec[0]} does not exist.`);
  const credentialFile = flags.credentialFile ? checkUnitPath('--credential-file', resolve(flags.credentialFile)) : undefined;
  if (credentialFile && !flags.print && !existsSync(credentialFile)) {
    throw new BrokerError('usage', `--credential-file ${credentialFile} does not exist.`, {
      hint: 'Write the client secret Value into it (one line, chmod 600).',
    });
  }

  const databasePasswordFile = flags.databasePasswordFile ? checkUnitPath('--database-password-file', resolve(flags.databasePasswordFile)) : undefined;
  if (databasePasswordFile && !flags.print && !existsSync(databasePasswordFile)) {
    throw new BrokerError('usage', `--database-password-file ${databasePasswordFile} does not exist.`, {
      hint: "Write the PostgreSQL user's password into it (one line, chmod 600).",
    });
  }

  const unitPath = unitPathFor(mode, io.env);
  const unit = renderUnit({ mode, exec, home, unitPath, user, group, credentialFile, databasePasswordFile });
  checkSettings(mode, home, user, flags, io);
  if (flags.print) {
    io.out(unit.replace(/\n$/, ''));
    return;
  }
  writeUnit(mode, unitPath, unit);
  io.out(`Wrote ${unitPath} (ExecStart=${exec.join(' ')} serve, BROKER_HOME=${home}).`);
  runSystemctl(mode, [['daemon-reload'], ['enable', '--now', UNIT_NAME]], `Wrote ${unitPath}`);
  const ctl = mode === 'user' ? 'systemctl --user' : 'systemctl';
  io.out(`Enabled and started broker.service. Status: \`${ctl} status broker\`; logs: \`journalctl${mode === 'user' ? ' --user' : ''} -u broker\`.`);
  io.out(`If it was already running, \`${ctl} restart broker\` applies the new unit.`);
  if (mode === 'user') io.out(`To keep it running while you are logged out: \`loginctl enable-linger ${io.env.USER ?? io.env.LOGNAME ?? '$USER'}\`.`);
}

/** The account the unit runs as and its BROKER_HOME; --print only warns where installing would refuse. */
function whoAndWhere(mode: UnitMode, flags: ServiceInstallFlags, io: Io): { user?: string; group?: string; home: string } {
  const env = io.env;
  if (flags.user !== undefined && mode === 'user') {
    throw new BrokerError('usage', '--user NAME goes with --system; a user unit runs as you.');
  }
  if (mode === 'user') {
    if (process.getuid?.() === 0 && env.SUDO_USER && !flags.print) {
      throw new BrokerError('usage', 'A user unit installed through sudo would belong to root, not to you.', {
        hint: 'Run `broker service install` without sudo, or add --system for a system unit.',
      });
    }
    return { home: resolve(brokerHome(env)) };
  }
  const user = flags.user ?? env.SUDO_USER;
  if (!user) {
    throw new BrokerError('usage', 'A system unit needs the user it runs as: --user NAME.', {
      hint: 'Under sudo it defaults to the invoking user; a dedicated account (e.g. `useradd --system broker`) is better still.',
    });
  }
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(user) || user.length > 32) throw new BrokerError('usage', `--user ${user} is not a valid user name.`);
  const account = lookupUser(user);
  if (!account && !flags.print)
    throw new BrokerError('usage', `There is no user ${user} on this machine.`, { hint: 'Create it first, or choose another with --user.' });
  if (!account) sayWarning(io, `there is no user ${user} on this machine; the unit is for another one`);
  // sudo drops BROKER_HOME unless kept; then the service user's own default is the right folder.
  if (env.BROKER_HOME) return { user, group: account?.group, home: resolve(env.BROKER_HOME) };
  if (account) return { user, group: account.group, home: join(account.home, '.config', 'broker') };
  throw new BrokerError('usage', `Set BROKER_HOME: the folder of ${user} cannot be looked up here.`);
}

function checkHome(home: string, flags: ServiceInstallFlags, io: Io): void {
  checkUnitPath('BROKER_HOME', home);
  if (['/tmp', '/var/tmp'].some((d) => under(home, d))) {
    const msg = `BROKER_HOME ${home} is under ${home.startsWith('/var/') ? '/var/tmp' : '/tmp'}, which the service does not see (PrivateTmp=yes) and which may be emptied.`;
    if (!flags.print) throw new BrokerError('usage', msg, { hint: 'Move it (e.g. to ~/.config/broker or /var/lib/broker) and set BROKER_HOME.' });
    sayWarning(io, msg);
  }
}

/** A service without settings would stop at once with exit code 3; one that cannot write its home would fail later. */
function checkSettings(mode: UnitMode, home: string, user: string | undefined, flags: ServiceInstallFlags, io: Io): void {
  if (!settingsExist(home)) {
    const msg = `No settings in ${home} yet: the service would stop at once with exit code 3.`;
    if (!flags.print)
      throw new BrokerError('config_missing', msg, { hint: `Run \`broker init\`${mode === 'system' ? ` as ${user}` : ''} first (or set BROKER_HOME).` });
    sayWarning(io, `${msg} Run \`broker init\` first.`);
  } else if (mode === 'system' && user) {
    const owner = statSync(home).uid;
    const account = lookupUser(user);
    if (account && owner !== account.uid) sayWarning(io, `${home} does not belong to ${user}; the service needs to write it (chown -R ${user}: ${home})`);
  }
}

function writeUnit(mode: UnitMode, unitPath: string, unit: string): void {
  try {
    mkdirSync(dirname(unitPath), { recursive: true, mode: 0o755 });
    writeFileSync(unitPath, unit);
    // Unit files are conventionally world-readable (the broker's umask is 077); nothing secret is in it.
    chmodSync(unitPath, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new BrokerError('store_error', `Cannot write ${unitPath} (${code}).`, {
      cause: e,
      hint:
        mode === 'system' && code === 'EACCES'
          ? 'A system unit needs root: run it with sudo, or use --print and install the unit by hand.'
          : 'Check the folder, or use --print and install the unit by hand.',
    });
  }
}
