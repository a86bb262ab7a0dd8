/**
 * `broker service install|uninstall`: the generated systemd unit (checked by
 * systemd's own `systemd-analyze verify`), its restart policy against the real
 * exit codes of `broker serve`, the systemd credential for the app secret, and
 * what install/uninstall do when systemctl is missing, fails, or works.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config/settings.ts';
import { BINARY, LOOPBACK_CALLBACK, configuredHome, connectOverHttp, newHome, run, serve } from './support/binary.ts';
import { missingCommand, unavailable } from './support/requires.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const SECRET = 'abc~service-test-secret';
const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

/** A BROKER_HOME with settings, written by the binary itself. */
async function initialisedHome(home = newHome()): Promise<string> {
  const r = await run(['init', '--non-interactive', '--client-id', CLIENT_ID, '--passcode', PASSCODE], {
    BROKER_HOME: home,
    BROKER_CLIENT_SECRET: SECRET,
  });
  expect(r.code, r.stderr).toBe(0);
  return home;
}

async function printUnit(args: string[], env: Record<string, string>): Promise<string> {
  const r = await run(['service', 'install', '--print', '--binary', BINARY, ...args], env);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

const directive = (unit: string, key: string): string[] =>
  unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

const HARDENING = {
  Restart: 'on-failure',
  RestartPreventExitStatus: '3',
  NoNewPrivileges: 'yes',
  ProtectSystem: 'strict',
  PrivateTmp: 'yes',
  PrivateDevices: 'yes',
  ProtectKernelTunables: 'yes',
  ProtectKernelModules: 'yes',
  ProtectControlGroups: 'yes',
  RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
  RestrictNamespaces: 'yes',
  LockPersonality: 'yes',
  SystemCallFilter: '@system-service',
  SystemCallArchitectures: 'native',
  UMask: '0077',
  // A core dump of the broker would hold the app secret and the refresh tokens in the clear.
  LimitCORE: '0',
};

const verifyUnavailable = unavailable('service.test.ts', 'the systemd-analyze verify tests', missingCommand('systemd-analyze'));

/** systemd's own check: unknown keys, bad values, a missing ExecStart binary all show up here. */
function verify(unit: string, user: boolean): { code: number | null; output: string } {
  const dir = tmp('broker-unit-');
  writeFileSync(join(dir, 'broker.service'), unit);
  const runtime = tmp('broker-xdg-runtime-');
  chmodSync(runtime, 0o700);
  const r = spawnSync('systemd-analyze', [...(user ? ['--user'] : []), 'verify', join(dir, 'broker.service')], {
    encoding: 'utf8',
    timeout: 20_000,
    // A user-mode check needs a runtime directory, as a login session would have.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_COLOR: '0' },
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * Whether verify itself works here, per mode, on a trivial unit: a user-mode check needs
 * more of the machine than a system-mode one. Unavailable means skipped with the reason,
 * never passed.
 */
function verifyProbe(user: boolean): string | null {
  if (verifyUnavailable) return 'systemd-analyze is not installed';
  const r = verify('[Service]\nExecStart=/bin/sh -c true\n', user);
  return r.code === 0 ? null : `systemd-analyze${user ? ' --user' : ''} verify does not work here: ${r.output.split('\n')[0]}`;
}

describe('broker service install --print', () => {
  let home: string;
  let configHome: string;
  beforeAll(async () => {
    home = await initialisedHome();
    configHome = tmp('broker-xdg-config-');
  });

  it('prints a user unit with every hardening directive and changes nothing', async () => {
    const unit = await printUnit([], { BROKER_HOME: home, XDG_CONFIG_HOME: configHome });
    expect(directive(unit, 'ExecStart')).toEqual([`${BINARY} serve`]);
    expect(directive(unit, 'Environment')).toEqual([`BROKER_HOME=${home}`]);
    expect(directive(unit, 'ReadWritePaths')).toEqual([home]);
    for (const [key, value] of Object.entries(HARDENING)) expect(directive(unit, key), key).toEqual([value]);
    // BROKER_HOME and the binary lie outside /home and /root here, so all of home can be hidden.
    expect(directive(unit, 'ProtectHome')).toEqual(['yes']);
    // Bun's JIT needs W+X memory: never MemoryDenyWriteExecute=yes, and the unit says why.
    expect(directive(unit, 'MemoryDenyWriteExecute')).toEqual(['no']);
    expect(unit).toMatch(/^#.*JIT.*\n(#.*\n)*MemoryDenyWriteExecute=no$/m);
    expect(directive(unit, 'WantedBy')).toEqual(['default.target']);
    expect(directive(unit, 'User')).toEqual([]);
    expect(directive(unit, 'LoadCredential')).toEqual([]);
    // The header documents the exit codes that matter to a service manager.
    expect(unit).toMatch(/^#\s+3\s+configuration.*NOT restarted/m);
    expect(unit).toMatch(/^#\s+1\s+unexpected failure.*restarted/m);
    expect(unit).toContain(join(configHome, 'systemd/user/broker.service'));
    expect(existsSync(join(configHome, 'systemd'))).toBe(false);
  });

  it('prints a system unit for the given user, started after the network', async () => {
    const unit = await printUnit(['--system', '--user', 'root'], { BROKER_HOME: home });
    expect(directive(unit, 'User')).toEqual(['root']);
    expect(directive(unit, 'Group')).toEqual(['root']);
    expect(directive(unit, 'WantedBy')).toEqual(['multi-user.target']);
    expect(directive(unit, 'After')).toEqual(['network-online.target']);
    for (const [key, value] of Object.entries(HARDENING)) expect(directive(unit, key), key).toEqual([value]);
    expect(unit).toContain('/etc/systemd/system/broker.service');
  });

  it('a system unit runs as the user who ran sudo, else needs --user', async () => {
    const viaSudo = await printUnit(['--system'], { BROKER_HOME: home, SUDO_USER: 'root' });
    expect(directive(viaSudo, 'User')).toEqual(['root']);
    const without = await run(['service', 'install', '--system', '--print'], { BROKER_HOME: home });
    expect(without.code).toBe(2);
    expect(without.stderr).toContain('--user NAME');
    const userUnitWithUser = await run(['service', 'install', '--print', '--user', 'root'], { BROKER_HOME: home });
    expect(userUnitWithUser.code).toBe(2);
    expect(userUnitWithUser.stderr).toContain('--system');
  });

  it('keeps the home trees read-only (not hidden) when BROKER_HOME is under /home', async () => {
    const unit = await printUnit([], { BROKER_HOME: '/home/alice/.config/broker', XDG_CONFIG_HOME: configHome });
    expect(directive(unit, 'ProtectHome')).toEqual(['read-only']);
    expect(directive(unit, 'ReadWritePaths')).toEqual(['/home/alice/.config/broker']);
  });

  it('--credential-file becomes LoadCredential=client-secret:PATH', async () => {
    const unit = await printUnit(['--credential-file', '/etc/broker/client-secret'], { BROKER_HOME: home, XDG_CONFIG_HOME: configHome });
    expect(directive(unit, 'LoadCredential')).toEqual(['client-secret:/etc/broker/client-secret']);
  });

  it.skipIf(verifyUnavailable)('passes systemd-analyze verify, as a user unit and as a system unit', async () => {
    const cred = join(tmp('broker-cred-'), 'client-secret');
    writeFileSync(cred, SECRET, { mode: 0o600 });
    const cases: [string, string[], boolean][] = [
      ['user unit', [], true],
      ['user unit with a credential', ['--credential-file', cred], true],
      ['system unit', ['--system', '--user', 'root'], false],
      ['system unit with a credential', ['--system', '--user', 'root', '--credential-file', cred], false],
    ];
    const probe = { user: verifyProbe(true), system: verifyProbe(false) };
    expect(probe.system, 'system-mode verify must work wherever systemd-analyze is installed').toBeNull();
    for (const [name, args, user] of cases) {
      if (user && unavailable('service.test.ts', `the ${name} check`, probe.user)) continue;
      const unit = await printUnit(args, { BROKER_HOME: home, XDG_CONFIG_HOME: configHome });
      const r = verify(unit, user);
      expect(r, name).toEqual({ code: 0, output: '' });
    }
    // The check is real: a unit it must reject is rejected.
    const broken = verify(
      (await printUnit([], { BROKER_HOME: home })).replace('ProtectSystem=strict', 'ProtectSystem=banana').replace(BINARY, '/nonexistent/broker'),
      false,
    );
    expect(broken.code).not.toBe(0);
    expect(broken.output).toMatch(/banana/);
  });
});

describe('the restart policy matches the exit codes of `broker serve`', () => {
  it('RestartPreventExitStatus is the exit code of serve without settings, and of serve with incomplete ones', async () => {
    const unit = await printUnit([], { BROKER_HOME: await initialisedHome(), XDG_CONFIG_HOME: tmp('broker-xdg-config-') });
    const noRestart = Number(directive(unit, 'RestartPreventExitStatus')[0]);

    const empty = newHome();
    mkdirSync(empty, { recursive: true });
    const missing = await run(['serve'], { BROKER_HOME: empty });
    expect(missing.stderr).toMatch(/broker: error: no settings/);
    expect(missing.code).toBe(noRestart);

    const incomplete = await initialisedHome();
    const file = join(incomplete, 'settings.json');
    const s = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete s.clientSecret;
    writeFileSync(file, JSON.stringify(s));
    const noSecret = await run(['serve'], { BROKER_HOME: incomplete });
    expect(noSecret.stderr).toMatch(/client-secret is missing/);
    expect(noSecret.code).toBe(noRestart);
  });
});

describe('the app secret from a systemd credential ($CREDENTIALS_DIRECTORY/client-secret)', () => {
  it('loadSettings takes BROKER_CLIENT_SECRET first, then the credential, then settings.json', async () => {
    const home = await initialisedHome();
    const creds = tmp('broker-creds-');
    writeFileSync(join(creds, 'client-secret'), 'from~credential\n');
    expect(loadSettings(home, {}).clientSecret).toBe(SECRET);
    expect(loadSettings(home, { CREDENTIALS_DIRECTORY: creds }).clientSecret).toBe('from~credential');
    expect(loadSettings(home, { CREDENTIALS_DIRECTORY: creds, BROKER_CLIENT_SECRET: 'from~env' }).clientSecret).toBe('from~env');
    // A credentials directory without our credential (another unit's) changes nothing.
    expect(loadSettings(home, { CREDENTIALS_DIRECTORY: tmp('broker-creds-') }).clientSecret).toBe(SECRET);
  });

  describe('with the compiled binary against the local provider', () => {
    const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });

    it('serve starts with no secret in settings.json, and Microsoft accepts the secret from the credential', async () => {
      const { home } = await configuredHome(entra, PASSCODE);
      const file = join(home, 'settings.json');
      const s = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      delete s.clientSecret;
      writeFileSync(file, JSON.stringify(s));

      // What systemd does for LoadCredential=: a private directory, named in the environment.
      const creds = tmp('broker-creds-');
      writeFileSync(join(creds, 'client-secret'), `${entra.clientSecret}\n`, { mode: 0o400 });
      const served = await serve(home, { CREDENTIALS_DIRECTORY: creds });
      try {
        // The code exchange authenticates the app with the secret: it came from the credential.
        const c = await connectOverHttp(served.url, PASSCODE, entra.login);
        const r = await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } });
        expect(r.status).toBe(200);
        expect(entra.stats().byGrant.authorization_code).toBeGreaterThanOrEqual(1);
      } finally {
        expect(await served.stop()).toBe(0);
      }
      expect(served.stderr()).not.toContain(entra.clientSecret);
    });
  });
});

describe('broker service install / uninstall and systemctl', () => {
  // A user unit cannot point into /tmp (PrivateTmp=yes hides it), so these homes live outside it: in the
  // ignored test-artifacts folder, or under $HOME when the checkout itself is under /tmp (as CI's clone is).
  const inRepo = resolve(import.meta.dirname, '../test-artifacts');
  const artifacts = /^\/(var\/)?tmp\//.test(inRepo) ? join(homedir(), '.cache', 'broker-service-tests') : inRepo;
  let home: string;
  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    home = await initialisedHome(join(mkdtempSync(join(artifacts, 'service-')), 'home'));
  });
  afterAll(() => {
    if (home) rmSync(resolve(home, '..'), { recursive: true, force: true });
  });

  /** A PATH holding only a stand-in systemctl that logs its arguments, says `stderr` and exits `code`. */
  function fakeSystemctl(code: number, stderr = ''): { path: string; calls: () => string[] } {
    const dir = tmp('broker-systemctl-');
    const log = join(dir, 'calls');
    writeFileSync(join(dir, 'systemctl'), `#!/bin/sh\necho "$*" >> '${log}'\n${stderr ? `echo '${stderr}' >&2\n` : ''}exit ${code}\n`, { mode: 0o755 });
    return { path: dir, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
  }

  const userEnv = (configHome: string, path: string) => ({ BROKER_HOME: home, HOME: tmp('broker-fake-home-'), XDG_CONFIG_HOME: configHome, PATH: path });

  it('without systemctl: writes the unit, says so, prints the commands to run, exits non-zero', async () => {
    const configHome = tmp('broker-xdg-config-');
    const r = await run(['service', 'install', '--binary', BINARY], userEnv(configHome, tmp('broker-empty-path-')));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('systemctl is not available');
    expect(r.stderr).toContain('systemctl --user daemon-reload');
    expect(r.stderr).toContain('systemctl --user enable --now broker.service');
    const written = readFileSync(join(configHome, 'systemd/user/broker.service'), 'utf8');
    expect(written.trim()).toBe((await printUnit([], { BROKER_HOME: home, XDG_CONFIG_HOME: configHome })).trim());
  });

  it('when systemctl fails: passes on its reason and the commands still to run', async () => {
    const configHome = tmp('broker-xdg-config-');
    const ctl = fakeSystemctl(1, 'Failed to connect to bus: No medium found');
    const r = await run(['service', 'install', '--binary', BINARY], userEnv(configHome, ctl.path));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Failed to connect to bus: No medium found');
    expect(r.stderr).toMatch(/by hand:\n\s+systemctl --user daemon-reload\n\s+systemctl --user enable --now broker.service/);
    expect(ctl.calls()).toEqual(['--user --no-ask-password daemon-reload']);
  });

  it('with a working systemctl: daemon-reload, enable --now; uninstall: disable --now, remove, daemon-reload', async () => {
    const configHome = tmp('broker-xdg-config-');
    const ctl = fakeSystemctl(0);
    const env = userEnv(configHome, ctl.path);
    const unitFile = join(configHome, 'systemd/user/broker.service');
    const r = await run(['service', 'install', '--binary', BINARY], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(unitFile);
    expect(r.stdout).toContain('loginctl enable-linger');
    expect(existsSync(unitFile)).toBe(true);
    expect(ctl.calls()).toEqual(['--user --no-ask-password daemon-reload', '--user --no-ask-password enable --now broker.service']);

    const u = await run(['service', 'uninstall'], env);
    expect(u.code, u.stderr).toBe(0);
    expect(existsSync(unitFile)).toBe(false);
    expect(ctl.calls().slice(2)).toEqual(['--user --no-ask-password disable --now broker.service', '--user --no-ask-password daemon-reload']);
    // Settings and connections are not the unit's: they stay.
    expect(existsSync(join(home, 'settings.json'))).toBe(true);
    const again = await run(['service', 'uninstall'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to uninstall');
  });

  it('uninstall without a working systemctl keeps the unit (disable needs it) and lists the three steps', async () => {
    const configHome = tmp('broker-xdg-config-');
    const unitFile = join(configHome, 'systemd/user/broker.service');
    expect((await run(['service', 'install', '--binary', BINARY], userEnv(configHome, fakeSystemctl(0).path))).code).toBe(0);
    const r = await run(['service', 'uninstall'], userEnv(configHome, tmp('broker-empty-path-')));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('systemctl is not available');
    expect(r.stderr).toContain(`systemctl --user disable --now broker.service\n  rm ${unitFile}\n  systemctl --user daemon-reload`);
    expect(existsSync(unitFile)).toBe(true);
  });

  it('refuses to install a service that could only fail: no settings yet, or BROKER_HOME under /tmp', async () => {
    const ctl = fakeSystemctl(0);
    const empty = join(mkdtempSync(join(artifacts, 'service-')), 'home');
    try {
      const r = await run(['service', 'install', '--binary', BINARY], { ...userEnv(tmp('broker-xdg-config-'), ctl.path), BROKER_HOME: empty });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('broker init');
    } finally {
      rmSync(resolve(empty, '..'), { recursive: true, force: true });
    }
    const inTmp = await run(['service', 'install', '--binary', BINARY], {
      ...userEnv(tmp('broker-xdg-config-'), ctl.path),
      BROKER_HOME: await initialisedHome(),
    });
    expect(inTmp.code).toBe(2);
    expect(inTmp.stderr).toContain('PrivateTmp');
    expect(ctl.calls()).toEqual([]);
  });
});
