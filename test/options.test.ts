/** The one table of options (src/config/options.ts): what is derived from it agrees with it. */
import { describe, expect, it } from 'vitest';
import { fromFlagsAndEnv, serveSettings } from '../src/cli/init/answers.ts';
import type { Io } from '../src/cli/io.ts';
import { main } from '../src/cli/main.ts';
import { OPTION_LIST, serveValues } from '../src/config/options.ts';
import { validateSettings } from '../src/config/settings.ts';

function io(env: Record<string, string | undefined> = {}): Io & { text: () => string } {
  const lines: string[] = [];
  return {
    out: (t) => void lines.push(t),
    err: (t) => void lines.push(t),
    env,
    isTTY: false,
    readStdin: async () => '',
    readLine: async () => '',
    text: () => lines.join('\n'),
  };
}

describe('the table of options', () => {
  it.each(['init', 'serve'] as const)('gives `%s --help` every flag and variable it takes', async (command) => {
    const out = io({ BROKER_HOME: '/nonexistent' });
    expect(await main([command, '--help'], out)).toBe(0);
    for (const o of OPTION_LIST.filter((o) => (command === 'init' ? o.init : o.serve))) {
      if (o.flag) expect(out.text()).toContain(`${o.flag}${o.arg ? ` <${o.arg.toLowerCase()}>` : ''}`);
      if (o.fileFlag && command === 'init') expect(out.text()).toContain(`${o.fileFlag} <path>`);
      if (o.env && (command === 'serve' || o.init === 'answer')) expect(out.text()).toContain(`[${o.env}]`);
    }
  });

  it('help is as wide as $COLUMNS says (40 to 500), else 80', async () => {
    const widest = async (env: Record<string, string>) => {
      const out = io({ BROKER_HOME: '/nonexistent', ...env });
      expect(await main(['serve', '--help'], out)).toBe(0);
      return Math.max(
        ...out
          .text()
          .split('\n')
          .map((l) => l.length),
      );
    };
    expect(await widest({})).toBeLessThanOrEqual(80);
    expect(await widest({ COLUMNS: 'wide' })).toBeLessThanOrEqual(80);
    expect(await widest({ COLUMNS: '20' })).toBeLessThanOrEqual(80);
    const wide = await widest({ COLUMNS: '200' });
    expect(wide).toBeGreaterThan(80);
    expect(wide).toBeLessThanOrEqual(200);
  });

  it('serve: a flag, else the variable, else the setting, else the default; an empty variable counts as unset', () => {
    const s = { listen: '127.0.0.1:1', logFormat: 'json' as const, metrics: true };
    expect(serveValues({ listen: '127.0.0.1:3' }, { BROKER_LISTEN: '127.0.0.1:2' }, s).listen).toBe('127.0.0.1:3');
    expect(serveValues({}, { BROKER_LISTEN: '127.0.0.1:2' }, s).listen).toBe('127.0.0.1:2');
    expect(serveValues({}, { BROKER_LISTEN: '' }, s).listen).toBe('127.0.0.1:1');
    expect(serveValues({}, {}, {}).listen).toBe('127.0.0.1:8080');
    expect(serveValues({}, {}, s).logFormat).toBe('json');
    expect(serveValues({}, {}, {}).logFormat).toBe('text');
    expect(serveValues({}, {}, s).metrics).toBe(true);
    // Only what the table gives serve: the app's settings are not overridable there.
    expect(serveValues({}, { BROKER_TENANT: 'common' }, {})).not.toHaveProperty('tenant');
  });

  it('init: answers from flags, then variables; serve options recorded from flags only', async () => {
    const answers = await fromFlagsAndEnv(
      { clientId: ' 00000000-0000-0000-0000-000000000001 ', allowedOrigin: [] },
      io({ BROKER_CLIENT_ID: 'ignored', BROKER_TENANT: 'common', BROKER_ALLOWED_ORIGINS: 'https://a.example/, https://b.example', BROKER_AUTHORITY: '' }),
    );
    expect(answers).toEqual({
      clientId: '00000000-0000-0000-0000-000000000001',
      tenant: 'common',
      allowedOrigins: ['https://a.example', 'https://b.example'],
    });
    expect(serveSettings({ logFormat: 'json', trustProxy: true, tlsCert: 'cert.pem' })).toEqual({
      logFormat: 'json',
      trustProxy: true,
      tlsCert: `${process.cwd()}/cert.pem`,
    });
  });

  it('checks the settings with the checks the table names, each problem naming its flag', () => {
    const problems = validateSettings(
      {
        clientId: 'x',
        tenant: 'consumers',
        authority: 'https://login.microsoftonline.com',
        publicUrl: 'http://localhost:8080',
        listen: 'nope',
        logFormat: 'xml' as 'json',
      },
      { requireSecret: true },
    );
    expect(problems).toEqual([
      expect.stringMatching(/^client-id must be/),
      'client-secret is missing',
      'listen must be HOST:PORT, like 127.0.0.1:8080',
      'log-format must be text or json',
      'passcode is missing (run `broker init`)',
    ]);
  });
});
