/**
 * The systemd unit for `broker serve`: where it goes and what it says. Pure (no
 * systemd, no file writes), so tests can check the text alone.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { CLIENT_SECRET_CREDENTIAL, DATABASE_PASSWORD_CREDENTIAL } from '../../config/settings.ts';
import { BrokerError } from '../../errors.ts';
import { VERSION } from '../../version.ts';

export const UNIT_NAME = 'broker.service';
export const CREDENTIAL_NAME = CLIENT_SECRET_CREDENTIAL;
export const SYSTEM_UNIT_DIR = '/etc/systemd/system';

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
  /** The PostgreSQL password, as the credential `database-password` (see cli/store-file.ts). */
  databasePasswordFile?: string;
}

/** Where the unit of this mode lives. */
export function unitPathFor(mode: UnitMode, env: Record<string, string | undefined>): string {
  return join(mode === 'user' ? userUnitDir(env) : SYSTEM_UNIT_DIR, UNIT_NAME);
}

function userUnitDir(env: Record<string, string | undefined>): string {
  const config = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(config, 'systemd', 'user');
}

/** Under these, ProtectHome=yes would hide BROKER_HOME or the binary from the service. */
const HOME_TREES = ['/home', '/root', '/run/user'];
export const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

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
    ...(u.databasePasswordFile
      ? [
          "# The PostgreSQL user's password (--database-url), as $CREDENTIALS_DIRECTORY/database-password.",
          `LoadCredential=${DATABASE_PASSWORD_CREDENTIAL}:${spec(u.databasePasswordFile)}`,
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

/** Paths go into the unit unquoted: refuse what would need quoting rather than risk a misread unit. */
export function checkUnitPath(what: string, p: string): string {
  if (!isAbsolute(p)) throw new BrokerError('usage', `${what} must be an absolute path (got ${p}).`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects.
  if (/[\s"'\\\x00-\x1f\x7f]/.test(p)) {
    throw new BrokerError('usage', `${what} ${p} contains a space, quote, backslash or control character, which a systemd unit cannot take unquoted.`, {
      hint: 'Use a path without them (a symlink will do).',
    });
  }
  return p;
}
