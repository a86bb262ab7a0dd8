/**
 * `broker service install|uninstall`: runs `broker serve` under systemd, as a user
 * unit (the default) or a system unit (--system), sandboxed as tightly as the
 * Bun runtime allows. Writing the unit is ours; starting it is systemctl's, and
 * when systemctl is missing or fails we say so and print the commands to run.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { brokerHome } from '../config/home.ts';
import { CLIENT_SECRET_CREDENTIAL, settingsExist } from '../config/settings.ts';
import { BrokerError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { EXIT } from './exit-codes.ts';
import type { Io } from './io.ts';

export const UNIT_NAME = 'broker.service';
export const CREDENTIAL_NAME = CLIENT_SECRET_CREDENTIAL;
const SYSTEM_UNIT_DIR = '/etc/systemd/system';
/** Bounds every systemctl call: a missing bus or a stuck job must not hang `install`. */
const SYSTEMCTL_TIMEOUT_MS = 30_000;

export type UnitMode = 'user' | 'system';

export interface UnitSpec {
  mode: UnitMode;
  /** Absolute path of the broker (plus the script, when run from source by bun). */
  exec: string[];
  /** Absolute BROKER_HOME. */
  home: string;
  /** Where the unit is installed; named in its header. */
  unitPath: string;
  user?: string;
  group?: string;
  credentialFile?: string;
}

/** Under these, ProtectHome=yes would hide BROKER_HOME or the binary from the service. */
const HOME_TREES = ['/home', '/root', '/run/user'];
const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

/**
 * The unit text. Pure, so tests can check it without systemd. Paths are checked
 * by `checkUnitPath` first: no quoting is needed, only `%` (and `$` on the
 * command line) escaped.
 */
export function renderUnit(u: UnitSpec): string {
  const spec = (v: string) => v.replaceAll('%', '%%');
  const execArg = (v: string) => spec(v).replaceAll('$', '$$$$');
  const ctl = u.mode === 'user' ? 'systemctl --user' : 'systemctl';
  const protectHome = [u.home, ...u.exec].some((p) => HOME_TREES.some((d) => under(p, d))) ? 'read-only' : 'yes';
  const lines = [
    `# ${UNIT_NAME}: the broker's HTTP server (\`broker serve\`) under systemd.`,
    `# Written by \`broker service install${u.mode === 'system' ? ' --system' : ''}\` (broker ${VERSION}) as`,
    `#   ${u.unitPath}`,
    `# Remove it with \`broker service uninstall${u.mode === 'system' ? ' --system' : ''}\`; logs: \`journalctl${u.mode === 'user' ? ' --user' : ''} -u broker\`.`,
    '#',
    '# Exit codes of `broker serve`:',
    '#   0  stopped cleanly (SIGTERM, SIGINT)',
    '#   1  unexpected failure, or the listen address   -> restarted after 5 s',
    '#      cannot be used (yet)',
    '#   3  configuration: no or invalid settings       -> NOT restarted',
    '#                                                     (RestartPreventExitStatus=3):',
    `#      fix it with \`broker init\`, then \`${ctl} restart broker\``,
    '#   5  store or file-system problem (BROKER_HOME)  -> restarted after 5 s',
    '#   (2 usage, 4 not found, 6 Microsoft unreachable, 7 credentials refused:',
    '#    other commands; see `broker --help` and the README.)',
    '',
    '[Unit]',
    'Description=broker: private OAuth token broker for unattended backups',
    ...(u.mode === 'system' ? ['Wants=network-online.target', 'After=network-online.target'] : []),
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[...u.exec.map(execArg), 'serve'].join(' ')}`,
    '# `systemctl reload broker` re-reads settings.json and the TLS certificate and key.',
    'ExecReload=/bin/kill -HUP $MAINPID',
    `Environment=BROKER_HOME=${spec(u.home)}`,
    'Restart=on-failure',
    'RestartSec=5',
    'RestartPreventExitStatus=3',
    ...(u.user ? [`User=${u.user}`] : []),
    ...(u.group ? [`Group=${u.group}`] : []),
    'UMask=0077',
    '# No core dumps: one would hold the app secret and open refresh tokens in the clear.',
    'LimitCORE=0',
    ...(u.credentialFile
      ? [
          '# The app secret, readable only by this service as $CREDENTIALS_DIRECTORY/client-secret;',
          '# it takes precedence over the secret in settings.json (BROKER_CLIENT_SECRET over both).',
          `LoadCredential=${CREDENTIAL_NAME}:${spec(u.credentialFile)}`,
        ]
      : []),
    '',
    '# Sandbox: read-only system, BROKER_HOME the only writable place, IP and local sockets only.',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ProtectHome=${protectHome}`,
    `ReadWritePaths=${spec(u.home)}`,
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    '# Not MemoryDenyWriteExecute=yes: the broker runs on Bun, whose JavaScript JIT maps',
    '# memory writable and executable at once (one large RWX region at start-up);',
    '# with MemoryDenyWriteExecute=yes that mapping is refused and the broker cannot start.',
    'MemoryDenyWriteExecute=no',
    'SystemCallFilter=@system-service',
    '# A system call outside the filter fails with EPERM instead of killing the broker.',
    'SystemCallErrorNumber=EPERM',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    `WantedBy=${u.mode === 'user' ? 'default.target' : 'multi-user.target'}`,
    '',
  ];
  return lines.join('\n');
}

export interface ServiceInstallFlags {
  system?: boolean;
  print?: boolean;
  user?: string;
  binary?: string;
  credentialFile?: string;
}

/** Paths go into the unit unquoted: refuse what would need quoting rather than risk a misread unit. */
function checkUnitPath(what: string, p: string): string {
  if (!isAbsolute(p)) throw new BrokerError('usage', `${what} must be an absolute path (got ${p}).`);
  if (/[\s"'\\\x00-\x1f\x7f]/.test(p)) {
    throw new BrokerError('usage', `${what} ${p} contains a space, quote, backslash or control character, which a systemd unit cannot take unquoted.`, {
      hint: 'Use a path without them (a symlink will do).',
    });
  }
  return p;
}

/** The broker that is running now: the compiled binary, or bun plus the script when run from source. */
function runningBroker(): string[] {
  const exe = process.execPath;
  const script = process.argv[1];
  if (/^(bun|node)(\.exe)?$/.test(basename(exe)) && script && !script.startsWith('/$bunfs/')) return [exe, resolve(script)];
  return [exe];
}

function userUnitDir(env: Record<string, string | undefined>): string {
  const config = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(config, 'systemd', 'user');
}

interface Account {
  name: string;
  uid: number;
  home: string;
  group?: string;
}

/** getent (NSS: LDAP, systemd-homed…), else /etc/passwd and /etc/group. */
function lookupUser(name: string): Account | null {
  const entry = (db: string, key: string): string[] | null => {
    const r = spawnSync('getent', [db, key], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (!r.error && r.status === 0 && r.stdout.trim()) return r.stdout.trim().split('\n')[0]!.split(':');
    if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ENOENT') return null;
    try {
      const line = readFileSync(`/etc/${db}`, 'utf8')
        .split('\n')
        .map((l) => l.split(':'))
        .find((f) => (db === 'group' && /^\d+$/.test(key) ? f[2] === key : f[0] === key));
      return line ?? null;
    } catch {
      return null;
    }
  };
  const pw = entry('passwd', name);
  if (!pw || pw.length < 7) return null;
  const group = entry('group', pw[3]!)?.[0];
  return { name: pw[0]!, uid: Number(pw[2]), home: pw[5]!, group };
}

/** The commands, and what to tell a person when they cannot be run for them. */
function runSystemctl(mode: UnitMode, steps: string[][], io: Io, done: string): void {
  const base = mode === 'user' ? ['--user'] : [];
  const shown = (args: string[]) => ['systemctl', ...base, ...args].join(' ');
  for (const [i, args] of steps.entries()) {
    const r = spawnSync('systemctl', [...base, '--no-ask-password', ...args], {
      encoding: 'utf8',
      timeout: SYSTEMCTL_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    let problem: string | undefined;
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') problem = 'systemctl is not available on this machine (no systemd?)';
    else if (code === 'ETIMEDOUT' || r.signal) problem = `\`${shown(args)}\` did not finish within ${SYSTEMCTL_TIMEOUT_MS / 1000} s`;
    else if (r.error) problem = `\`${shown(args)}\` could not run (${code ?? 'error'})`;
    else if (r.status !== 0) {
      const why = `${r.stderr ?? ''}`.trim().split('\n').filter(Boolean).slice(-2).join(' ');
      problem = `\`${shown(args)}\` failed (exit ${r.status})${why ? `: ${why}` : ''}`;
    }
    if (problem) {
      throw new BrokerError('internal', `${done}, but ${problem}.`, {
        hint: `Run ${steps.length - i > 1 ? 'these' : 'this'} by hand${mode === 'system' ? ' (as root)' : ''}:\n${steps
          .slice(i)
          .map((a) => `  ${shown(a)}`)
          .join('\n')}${mode === 'user' ? '\n(A user unit needs a running `systemd --user`, i.e. a login session or `loginctl enable-linger`.)' : ''}`,
      });
    }
  }
}

export async function serviceInstall(flags: ServiceInstallFlags, io: Io): Promise<void> {
  const mode: UnitMode = flags.system ? 'system' : 'user';
  const env = io.env;
  const root = process.getuid?.() === 0;
  if (flags.user !== undefined && mode === 'user') {
    throw new BrokerError('usage', '--user NAME goes with --system; a user unit runs as you.');
  }
  if (mode === 'user' && root && env.SUDO_USER && !flags.print) {
    throw new BrokerError('usage', 'A user unit installed through sudo would belong to root, not to you.', {
      hint: 'Run `broker service install` without sudo, or add --system for a system unit.',
    });
  }

  let user: string | undefined;
  let group: string | undefined;
  let home: string;
  if (mode === 'system') {
    user = flags.user ?? env.SUDO_USER;
    if (!user) {
      throw new BrokerError('usage', 'A system unit needs the user it runs as: --user NAME.', {
        hint: 'Under sudo it defaults to the invoking user; a dedicated account (e.g. `useradd --system broker`) is better still.',
      });
    }
    if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(user) || user.length > 32) throw new BrokerError('usage', `--user ${user} is not a valid user name.`);
    const account = lookupUser(user);
    if (!account && !flags.print) throw new BrokerError('usage', `There is no user ${user} on this machine.`, { hint: 'Create it first, or choose another with --user.' });
    if (!account) io.err(`warning: there is no user ${user} on this machine; the unit is for another one.`);
    group = account?.group;
    // sudo drops BROKER_HOME unless kept; then the service user's own default is the right folder.
    if (env.BROKER_HOME) home = resolve(env.BROKER_HOME);
    else if (account) home = join(account.home, '.config', 'broker');
    else throw new BrokerError('usage', `Set BROKER_HOME: the folder of ${user} cannot be looked up here.`);
  } else {
    home = resolve(brokerHome(env));
  }
  checkUnitPath('BROKER_HOME', home);
  if (['/tmp', '/var/tmp'].some((d) => under(home, d))) {
    const msg = `BROKER_HOME ${home} is under ${home.startsWith('/var/') ? '/var/tmp' : '/tmp'}, which the service does not see (PrivateTmp=yes) and which may be emptied.`;
    if (!flags.print) throw new BrokerError('usage', msg, { hint: 'Move it (e.g. to ~/.config/broker or /var/lib/broker) and set BROKER_HOME.' });
    io.err(`warning: ${msg}`);
  }

  const exec = flags.binary ? [checkUnitPath('--binary', resolve(flags.binary))] : runningBroker().map((p) => checkUnitPath('The broker binary', p));
  if (flags.binary && !flags.print && !existsSync(exec[0]!)) throw new BrokerError('usage', `--binary ${exec[0]} does not exist.`);
  const credentialFile = flags.credentialFile ? checkUnitPath('--credential-file', resolve(flags.credentialFile)) : undefined;
  if (credentialFile && !flags.print && !existsSync(credentialFile)) {
    throw new BrokerError('usage', `--credential-file ${credentialFile} does not exist.`, { hint: 'Write the client secret Value into it (one line, chmod 600).' });
  }

  const unitPath = join(mode === 'user' ? userUnitDir(env) : SYSTEM_UNIT_DIR, UNIT_NAME);
  const unit = renderUnit({ mode, exec, home, unitPath, user, group, credentialFile });

  if (!settingsExist(home)) {
    const msg = `No settings in ${home} yet: the service would stop at once with exit code 3.`;
    if (!flags.print) throw new BrokerError('config_missing', msg, { hint: `Run \`broker init\`${mode === 'system' ? ` as ${user}` : ''} first (or set BROKER_HOME).` });
    io.err(`warning: ${msg} Run \`broker init\` first.`);
  } else if (mode === 'system' && user) {
    const owner = statSync(home).uid;
    const account = lookupUser(user);
    if (account && owner !== account.uid) io.err(`warning: ${home} does not belong to ${user}; the service needs to write it (chown -R ${user}: ${home}).`);
  }

  if (flags.print) {
    io.out(unit.replace(/\n$/, ''));
    return;
  }

  try {
    mkdirSync(dirname(unitPath), { recursive: true, mode: 0o755 });
    writeFileSync(unitPath, unit);
    // Unit files are conventionally world-readable (the broker's umask is 077); nothing secret is in it.
    chmodSync(unitPath, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new BrokerError('store_error', `Cannot write ${unitPath} (${code}).`, {
      cause: e,
      hint: mode === 'system' && code === 'EACCES' ? 'A system unit needs root: run it with sudo, or use --print and install the unit by hand.' : 'Check the folder, or use --print and install the unit by hand.',
    });
  }
  io.out(`Wrote ${unitPath} (ExecStart=${exec.join(' ')} serve, BROKER_HOME=${home}).`);
  runSystemctl(mode, [['daemon-reload'], ['enable', '--now', UNIT_NAME]], io, `Wrote ${unitPath}`);
  const ctl = mode === 'user' ? 'systemctl --user' : 'systemctl';
  io.out(`Enabled and started broker.service. Status: \`${ctl} status broker\`; logs: \`journalctl${mode === 'user' ? ' --user' : ''} -u broker\`.`);
  io.out(`If it was already running, \`${ctl} restart broker\` applies the new unit.`);
  if (mode === 'user') io.out(`To keep it running while you are logged out: \`loginctl enable-linger ${env.USER ?? env.LOGNAME ?? '$USER'}\`.`);
}

export async function serviceUninstall(flags: { system?: boolean }, io: Io): Promise<void> {
  const mode: UnitMode = flags.system ? 'system' : 'user';
  const unitPath = join(mode === 'user' ? userUnitDir(io.env) : SYSTEM_UNIT_DIR, UNIT_NAME);
  if (!existsSync(unitPath)) {
    io.out(`No ${unitPath}; nothing to uninstall.`);
    return;
  }
  // Stop and disable first: `disable` needs the unit file to find its links, so when
  // systemctl cannot do it the file stays, and the person gets all three steps.
  const base = mode === 'user' ? 'systemctl --user' : 'systemctl';
  try {
    runSystemctl(mode, [['disable', '--now', UNIT_NAME]], io, 'Nothing was removed');
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
  runSystemctl(mode, [['daemon-reload']], io, `Stopped the service and removed ${unitPath}`);
  io.out('Stopped and disabled broker.service. The settings and connections in BROKER_HOME are untouched.');
}

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
    .addHelpText('after', `\nExit codes of the service: ${EXIT.config} (configuration) is never restarted; fix it with \`broker init\`.`)
    .action(async (flags: ServiceInstallFlags) => serviceInstall(flags, io));
  service
    .command('uninstall')
    .description('stop and disable the service, and remove its unit (settings and connections stay)')
    .option('--system', `the system unit in ${SYSTEM_UNIT_DIR}`)
    .action(async (flags: { system?: boolean }) => serviceUninstall(flags, io));
}
