/**
 * One app per provider in the settings: Microsoft's stays in the top-level
 * fields older brokers wrote (so their files load as they are), the others sit
 * under `providers`. What the domain makes of them (appOf), and the checks.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appOf } from '../src/broker/context.ts';
import { appSecretWarnings, connectionWarnings, DAY_MS, idleExpiresAt } from '../src/broker/lifecycle.ts';
import { brokerConfig } from '../src/cli/open.ts';
import { loadSettings, validateSettings, type Settings } from '../src/config/settings.ts';
import { endpointsOf, MICROSOFT, PROVIDERS } from '../src/oauth/providers.ts';

const HASH = '$argon2id$v=19$m=65536,t=2,p=1$abc$def';
const MS_ID = '00000000-0000-0000-0000-000000000001';
const BASE = {
  tenant: 'consumers',
  authority: 'https://login.microsoftonline.com',
  publicUrl: 'https://b.example.org',
  listen: '127.0.0.1:8080',
  passcodeHash: HASH,
};

function home(settings: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-settings-'));
  writeFileSync(join(dir, 'settings.json'), JSON.stringify(settings), { mode: 0o600 });
  return dir;
}

describe("an older broker's settings (Microsoft only, flat) load as they are", () => {
  it('Microsoft is the one app, with the endpoints built from authority and tenant; no other provider is configured', () => {
    const s = loadSettings(
      home({ ...BASE, clientId: MS_ID, clientSecret: 'Abc8Q~secret', secretExpires: '2027-01-31', allowedOrigins: ['http://localhost:8200'] }),
      {},
    );
    const config = brokerConfig(s);
    expect(appOf(config, MICROSOFT)).toEqual({
      clientId: MS_ID,
      clientSecret: 'Abc8Q~secret',
      authority: BASE.authority,
      tenant: 'consumers',
      secretExpires: '2027-01-31',
    });
    expect(endpointsOf(MICROSOFT, appOf(config, MICROSOFT)!).tokenUrl).toBe('https://login.microsoftonline.com/consumers/oauth2/v2.0/token');
    for (const id of ['google', 'dropbox', 'box', 'pcloud'] as const) expect(appOf(config, PROVIDERS[id])).toBeUndefined();
  });

  it('BROKER_CLIENT_SECRET still answers for Microsoft only', () => {
    const s = loadSettings(home({ ...BASE, clientId: MS_ID, providers: { box: { clientId: 'box-id', clientSecret: 'box-secret' } } }), {
      BROKER_CLIENT_SECRET: 'from-env',
    });
    const config = brokerConfig(s);
    expect(appOf(config, MICROSOFT)?.clientSecret).toBe('from-env');
    expect(appOf(config, PROVIDERS.box)?.clientSecret).toBe('box-secret');
  });
});

describe('providers other than Microsoft', () => {
  it('a broker with a Box app alone needs no Microsoft fields; the default endpoints apply unless overridden', () => {
    const s = { ...BASE, providers: { box: { clientId: 'box-id', clientSecret: 'box-secret' } } } as Partial<Settings>;
    expect(validateSettings(s, { requireSecret: true })).toEqual([]);
    const config = brokerConfig(loadSettings(home(s), {}));
    expect(appOf(config, MICROSOFT)).toBeUndefined();
    expect(endpointsOf(PROVIDERS.box, appOf(config, PROVIDERS.box)!)).toEqual({
      authorizeUrl: 'https://account.box.com/api/oauth2/authorize',
      tokenUrl: 'https://api.box.com/oauth2/token',
      revokeUrl: 'https://api.box.com/oauth2/revoke',
    });
    expect(endpointsOf(PROVIDERS.google, { clientId: 'g', clientSecret: 's', tokenUrl: 'http://127.0.0.1:9/token' }).tokenUrl).toBe('http://127.0.0.1:9/token');
  });

  it('every problem of every app, each naming its provider, never a secret', () => {
    const s = {
      ...BASE,
      providers: {
        google: { clientId: 'g id', clientSecret: 'google-secret-value', tokenUrl: 'http://oauth2.example.org/token' },
        dropbox: { clientId: 'dbx' },
        box: { clientId: 'box', clientSecret: 'box-secret-value', secretExpires: 'soon' },
        foo: { clientId: 'x', clientSecret: 'y' },
      },
    } as unknown as Partial<Settings>;
    const problems = validateSettings(s, { requireSecret: true });
    expect(problems).toEqual([
      'google client-id is missing or not one word',
      expect.stringMatching(/^google token-url must use https:\/\//),
      'dropbox client-secret is missing',
      'box secret-expires must be a date YYYY-MM-DD',
      'providers.foo is not a provider (google, dropbox, box, pcloud)',
    ]);
    expect(problems.join(' ')).not.toMatch(/google-secret-value|box-secret-value/);
  });

  it('no app at all is still an error naming the Microsoft flags', () => {
    expect(validateSettings({ ...BASE }, { requireSecret: true })).toEqual(['client-id is missing', 'client-secret is missing']);
  });
});

describe("each provider's idle limit (list, /status)", () => {
  const conn = (service: string, idleDays: number) => ({
    keyid: 'k',
    service,
    createdAt: 0,
    lastRefreshAt: 0,
    lastUsedAt: null,
    state: 'active' as const,
    stateReason: null,
    now: idleDays * DAY_MS,
  });

  it.each([
    ['onedrivev2', 59, null],
    ['onedrivev2', 61, 'Microsoft ends this connection on 1970-04-01'],
    ['box.com', 31, 'Box ends this connection on 1970-03-02'],
    ['googledrive', 160, 'Google ends this connection on 1970-07-02'],
    ['dropbox', 400, null],
  ])('%s idle %i days → %s', (service, days, warning) => {
    const c = conn(service, days);
    const w = connectionWarnings(c as never, c.now);
    if (warning === null) expect(w).toEqual([]);
    else expect(w[0]).toContain(warning);
  });

  it('Dropbox and pCloud have none', () => {
    expect(idleExpiresAt({ service: 'dropbox', createdAt: 0, lastRefreshAt: null })).toBeNull();
    expect(idleExpiresAt({ service: 'box.com', createdAt: 0, lastRefreshAt: null })).toBe(60 * DAY_MS);
  });
});

describe('secret expiry, per app', () => {
  it("each app's own reminder, naming its provider and the init command that fixes it; Microsoft's as before", () => {
    const w = appSecretWarnings(
      {
        secretExpires: '1970-01-20',
        providers: { box: { clientId: 'b', clientSecret: 's', secretExpires: '1970-01-10' }, google: { clientId: 'g', clientSecret: 's' } },
      },
      0,
    );
    expect(w).toEqual([
      'The app secret expires in 19 days (1970-01-20). Create a new secret in Entra and run `broker init` again before then.',
      'The Box app secret expires in 9 days (1970-01-10). Create a new secret in the Box console and run `broker init --provider box` again before then.',
    ]);
  });
});
