/**
 * The systemd unit text (src/cli/service/unit.ts `renderUnit`), without systemd:
 * every directive it must carry, and a table of options → the lines they make.
 * (Installing it, and `systemd-analyze verify`: service.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { checkUnitPath, renderUnit, type UnitSpec, unitPathFor } from '../src/cli/service/unit.ts';
import { BrokerError } from '../src/errors.ts';

const base: UnitSpec = { mode: 'user', exec: ['/usr/local/bin/broker'], home: '/var/lib/broker', unitPath: '/etc/systemd/user/broker.service' };
const lines = (spec: Partial<UnitSpec> = {}) => renderUnit({ ...base, ...spec }).split('\n');
const directives = (spec: Partial<UnitSpec> = {}) => lines(spec).filter((l) => /^[A-Z][A-Za-z]+=/.test(l));

describe('renderUnit', () => {
  it.each([
    'Type=simple',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=5',
    'RestartPreventExitStatus=3',
    'UMask=0077',
    'LimitCORE=0',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'MemoryDenyWriteExecute=no',
    'SystemCallFilter=@system-service',
    'SystemCallErrorNumber=EPERM',
    'SystemCallArchitectures=native',
    'Description=broker: private OAuth token broker for unattended backups',
  ])('every unit has %s', (line) => {
    expect(directives({ mode: 'user' })).toContain(line);
    expect(directives({ mode: 'system', user: 'backup' })).toContain(line);
  });

  it('has the three sections, in order, and each directive once', () => {
    const text = lines();
    const sections = text.filter((l) => /^\[.*\]$/.test(l));
    expect(sections).toEqual(['[Unit]', '[Service]', '[Install]']);
    const names = directives().map((l) => l.split('=')[0]);
    expect(names.length).toBe(new Set(names).size);
  });

  it.each<[string, Partial<UnitSpec>, string[], string[]]>([
    [
      'a user unit',
      { mode: 'user' },
      [
        'WantedBy=default.target',
        'ExecStart=/usr/local/bin/broker serve',
        'Environment=BROKER_HOME=/var/lib/broker',
        'ReadWritePaths=/var/lib/broker',
        'ProtectHome=yes',
      ],
      ['Wants=network-online.target', 'After=network-online.target', 'WantedBy=multi-user.target'],
    ],
    [
      'a system unit',
      { mode: 'system', user: 'backup' },
      ['Wants=network-online.target', 'After=network-online.target', 'WantedBy=multi-user.target', 'User=backup'],
      ['WantedBy=default.target', 'Group=backup'],
    ],
    ['a system unit with a group', { mode: 'system', user: 'backup', group: 'backups' }, ['User=backup', 'Group=backups'], []],
    ['no user given: no User= or Group=', { mode: 'user' }, [], ['User=', 'Group=']],
    [
      'BROKER_HOME under /home: the home trees read-only, not hidden',
      { home: '/home/alice/.config/broker' },
      ['ProtectHome=read-only', 'ReadWritePaths=/home/alice/.config/broker'],
      ['ProtectHome=yes'],
    ],
    ['the binary under /root: read-only', { exec: ['/root/bin/broker'] }, ['ProtectHome=read-only'], ['ProtectHome=yes']],
    ['under /run/user: read-only', { home: '/run/user/1000/broker' }, ['ProtectHome=read-only'], []],
    ['/homes is not /home', { home: '/homes/broker' }, ['ProtectHome=yes'], ['ProtectHome=read-only']],
    ['run from source by bun', { exec: ['/usr/bin/bun', '/opt/broker/bin/broker.ts'] }, ['ExecStart=/usr/bin/bun /opt/broker/bin/broker.ts serve'], []],
    ['a credential file', { credentialFile: '/etc/broker/client-secret' }, ['LoadCredential=client-secret:/etc/broker/client-secret'], []],
    ['no credential file', {}, [], ['LoadCredential=']],
    [
      "the PostgreSQL user's password",
      { databasePasswordFile: '/etc/broker/db-password' },
      ['LoadCredential=database-password:/etc/broker/db-password'],
      ['LoadCredential=client-secret'],
    ],
    [
      '% is escaped for systemd, $ on the command line too',
      { exec: ['/opt/b%r/$broker'], home: '/srv/b%r' },
      ['ExecStart=/opt/b%%r/$$broker serve', 'Environment=BROKER_HOME=/srv/b%%r', 'ReadWritePaths=/srv/b%%r'],
      [],
    ],
  ])('%s', (_, spec, present, absent) => {
    const got = directives(spec);
    for (const line of present) expect(got).toContain(line);
    for (const prefix of absent) expect(got.filter((l) => l.startsWith(prefix))).toEqual([]);
  });

  it.each<[Partial<UnitSpec>, string[]]>([
    [
      { mode: 'user' },
      [
        '# Written by `broker service install` (broker ',
        '#   /etc/systemd/user/broker.service',
        'logs: `journalctl --user -u broker`',
        'then `systemctl --user restart broker`',
      ],
    ],
    [
      { mode: 'system', unitPath: '/etc/systemd/system/broker.service' },
      [
        '# Written by `broker service install --system` (broker ',
        '#   /etc/systemd/system/broker.service',
        'logs: `journalctl -u broker`',
        'then `systemctl restart broker`',
      ],
    ],
  ])('the header of %j names where it is, how to remove it and where its logs are', (spec, fragments) => {
    const text = renderUnit({ ...base, ...spec });
    for (const f of fragments) expect(text).toContain(f);
  });
});

describe('unitPathFor', () => {
  it.each<['user' | 'system', Record<string, string | undefined>, string]>([
    ['system', {}, '/etc/systemd/system/broker.service'],
    ['user', { HOME: '/home/alice' }, '/home/alice/.config/systemd/user/broker.service'],
    ['user', { HOME: '/home/alice', XDG_CONFIG_HOME: '/srv/config' }, '/srv/config/systemd/user/broker.service'],
    ['user', { HOME: '/home/alice', XDG_CONFIG_HOME: 'relative/config' }, '/home/alice/.config/systemd/user/broker.service'],
  ])('%s %j → %s', (mode, env, path) => {
    expect(unitPathFor(mode, env)).toBe(path);
  });
});

describe('checkUnitPath', () => {
  it.each([
    ['/usr/local/bin/broker', null],
    ['/var/lib/broker-home_1.x', null],
    ['relative/broker', 'must be an absolute path'],
    ['/with space/broker', 'contains a space, quote, backslash or control character'],
    ['/with"quote', 'contains a space, quote, backslash or control character'],
    ["/with'quote", 'contains a space, quote, backslash or control character'],
    ['/with\\backslash', 'contains a space, quote, backslash or control character'],
    ['/with\ttab', 'contains a space, quote, backslash or control character'],
    ['/with\nnewline', 'contains a space, quote, backslash or control character'],
  ])('%j → %j', (path, refusal) => {
    if (refusal === null) {
      expect(checkUnitPath('BROKER_HOME', path)).toBe(path);
      return;
    }
    let e: unknown;
    try {
      checkUnitPath('BROKER_HOME', path);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(BrokerError);
    expect((e as BrokerError).code).toBe('usage');
    expect((e as BrokerError).message).toContain(refusal);
  });
});
