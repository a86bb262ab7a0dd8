/**
 * The settings' validation rules (src/config/settings.ts), as tables: each
 * input, and the message a person gets for it (null: accepted).
 */
import { describe, expect, it } from 'vitest';
import {
  normaliseUrl,
  validateClientId,
  validateClientSecret,
  validateHttpUrl,
  validateListen,
  validateOrigin,
  validateSettings,
  validateTenant,
} from '../src/config/settings.ts';

const GUID = '00000000-0000-0000-0000-000000000001';

describe('validateClientId', () => {
  it.each([
    [GUID, null],
    ['ABCDEF01-2345-6789-ABCD-EF0123456789', null],
    ['not-a-guid', 'must be the Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000'],
    [`${GUID}x`, 'must be the Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000'],
    ['', 'must be the Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000'],
  ])('%j → %j', (input, expected) => {
    expect(validateClientId(input)).toBe(expected);
  });
});

describe('validateClientSecret', () => {
  it.each([
    ['Abc8Q~someSecretValue_123', null],
    ['', 'is empty'],
    [GUID, "looks like the secret's ID (a GUID); copy the secret's Value instead"],
    [` ${GUID}\n`, "looks like the secret's ID (a GUID); copy the secret's Value instead"],
    ['two\nlines', 'must be one line'],
    ['carriage\rreturn', 'must be one line'],
    ['x'.repeat(1025), 'must be one line'],
    ['x'.repeat(1024), null],
  ])('%j → %j', (input, expected) => {
    expect(validateClientSecret(input)).toBe(expected);
  });
});

describe('validateTenant', () => {
  const refused = 'must be consumers, common, organizations, a tenant id (GUID) or a tenant domain';
  it.each([
    ['consumers', null],
    ['common', null],
    ['organizations', null],
    [GUID, null],
    ['contoso.onmicrosoft.com', null],
    ['example.org', null],
    ['Consumers', refused],
    ['contoso', refused],
    ['-bad.example.org', refused],
    ['', refused],
  ])('%j → %j', (input, expected) => {
    expect(validateTenant(input)).toBe(expected);
  });
});

describe('validateHttpUrl', () => {
  const publicHttp =
    'must use HTTPS: Microsoft accepts http:// redirect URIs only for localhost (localhost and 127.0.0.1 are allowed); use an https:// URL (e.g. behind a reverse proxy), or keep http://localhost:PORT and connect with `broker connect` or an SSH tunnel';
  const authorityHttp = 'must use https:// (the app secret is sent there); http:// only for a local test provider on localhost or 127.x.x.x';
  it.each([
    ['https://broker.example.org', 'public-url', {}, null],
    ['https://broker.example.org/', 'public-url', {}, null],
    ['http://localhost:8080', 'public-url', {}, null],
    ['http://127.0.0.1:8080', 'public-url', {}, null],
    ['http://nas.local:8080', 'public-url', {}, publicHttp],
    ['http://nas.local:8080', 'public-url', { allowInsecureHttp: true }, null],
    ['http://127.0.0.2:8080', 'public-url', {}, publicHttp],
    ['https://broker.example.org/duplicati', 'public-url', {}, 'must be the root of a host (Duplicati drops the path when it builds its login link)'],
    ['https://broker.example.org/?a=1', 'public-url', {}, 'must not have a query or fragment'],
    ['https://broker.example.org/#top', 'public-url', {}, 'must not have a query or fragment'],
    ['https://user:pw@broker.example.org', 'public-url', {}, 'must not contain a user name or password'],
    ['ftp://broker.example.org', 'public-url', {}, 'must start with https:// (or http:// for localhost)'],
    ['broker.example.org', 'public-url', {}, 'is not a URL'],
    ['https://login.microsoftonline.com', 'authority', {}, null],
    ['https://login.microsoftonline.com/some/path', 'authority', {}, null],
    ['http://127.0.0.1:9999', 'authority', {}, null],
    ['http://127.1.2.3:9999', 'authority', {}, null],
    ['http://localhost:9999', 'authority', {}, null],
    ['http://login.microsoftonline.com', 'authority', {}, authorityHttp],
    ['http://login.microsoftonline.com', 'authority', { allowInsecureHttp: true }, authorityHttp],
  ] as const)('%s as %s %j → %j', (input, what, opts, expected) => {
    expect(validateHttpUrl(input, what, opts)).toBe(expected);
  });
});

describe('validateListen', () => {
  const refused = 'must be HOST:PORT, like 127.0.0.1:8080';
  it.each([
    ['127.0.0.1:8080', null],
    ['0.0.0.0:443', null],
    ['localhost:65535', null],
    ['[::1]:8080', null],
    ['[2001:db8::1]:8443', null],
    ['127.0.0.1:65536', refused],
    ['127.0.0.1', refused],
    [':8080', refused],
    ['::1:8080', refused],
    ['127.0.0.1:123456', refused],
  ])('%j → %j', (input, expected) => {
    expect(validateListen(input)).toBe(expected);
  });
});

describe('validateOrigin', () => {
  it.each([
    ['http://localhost:8200', null],
    ['http://localhost:8200/', null],
    ['https://duplicati.example.org', null],
    ['http://localhost:8200/ngax', 'must be an origin like http://localhost:8200 (no path)'],
    ['localhost:8200', 'must be an origin like http://localhost:8200 (no path)'],
    ['not an origin', 'is not an origin like http://localhost:8200'],
  ])('%j → %j', (input, expected) => {
    expect(validateOrigin(input)).toBe(expected);
  });
});

describe('normaliseUrl', () => {
  it.each([
    ['https://broker.example.org/', 'https://broker.example.org'],
    ['  https://broker.example.org//  ', 'https://broker.example.org'],
    ['http://localhost:8080', 'http://localhost:8080'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseUrl(input)).toBe(expected);
  });
});

describe('validateSettings', () => {
  const valid = {
    clientId: GUID,
    clientSecret: 'Abc8Q~someSecretValue_123',
    tenant: 'consumers',
    authority: 'https://login.microsoftonline.com',
    publicUrl: 'https://broker.example.org',
    listen: '127.0.0.1:8080',
    passcodeHash: '$argon2id$v=19$m=65536,t=2,p=1$salt$hash',
    allowedOrigins: ['http://localhost:8200'],
  };

  it('complete settings have no problem', () => {
    expect(validateSettings(valid, { requireSecret: true })).toEqual([]);
  });

  it.each([
    ['no client id', { clientId: undefined }, { requireSecret: true }, ['client-id is missing']],
    ['no secret, required', { clientSecret: undefined }, { requireSecret: true }, ['client-secret is missing']],
    ['no secret, not required', { clientSecret: undefined }, { requireSecret: false }, []],
    ['an empty secret, even when not required', { clientSecret: '' }, { requireSecret: false }, ['client-secret is missing']],
    ['the secret ID', { clientSecret: GUID }, { requireSecret: true }, ["client-secret looks like the secret's ID (a GUID); copy the secret's Value instead"]],
    [
      'a bad tenant',
      { tenant: 'contoso' },
      { requireSecret: true },
      ['tenant must be consumers, common, organizations, a tenant id (GUID) or a tenant domain'],
    ],
    ['plain-http public URL', { publicUrl: 'http://nas.local:8080' }, { requireSecret: true }, [expect.stringMatching(/^public-url must use HTTPS: /)]],
    ['plain-http public URL, allowed by the caller', { publicUrl: 'http://nas.local:8080' }, { requireSecret: true, allowInsecureHttp: true }, []],
    ['plain-http public URL, allowed by the settings', { publicUrl: 'http://nas.local:8080', insecureHttp: true }, { requireSecret: true }, []],
    ['a bad listen', { listen: '8080' }, { requireSecret: true }, ['listen must be HOST:PORT, like 127.0.0.1:8080']],
    ['no passcode', { passcodeHash: undefined }, { requireSecret: true }, ['passcode is missing (run `broker init`)']],
    ['a passcode that is no argon2 hash', { passcodeHash: 'plain' }, { requireSecret: true }, ['passcode is missing (run `broker init`)']],
    [
      'a bad origin',
      { allowedOrigins: ['http://localhost:8200/ngax'] },
      { requireSecret: true },
      ['allowed-origin http://localhost:8200/ngax must be an origin like http://localhost:8200 (no path)'],
    ],
    ['a bad expiry date', { secretExpires: '2026-1-1' }, { requireSecret: true }, ['secret-expires must be a date YYYY-MM-DD']],
    ['a good expiry date', { secretExpires: '2026-01-01' }, { requireSecret: true }, []],
    ['a certificate without a key', { tlsCert: '/etc/broker/cert.pem' }, { requireSecret: true }, ['tls-cert and tls-key go together']],
    ['a key without a certificate', { tlsKey: '/etc/broker/key.pem' }, { requireSecret: true }, ['tls-cert and tls-key go together']],
    ['a bad metrics listen', { metricsListen: 'nowhere' }, { requireSecret: true }, ['metrics-listen must be HOST:PORT, like 127.0.0.1:8080']],
    ['a bad log format', { logFormat: 'xml' }, { requireSecret: true }, ['log-format must be text or json']],
  ] as const)('%s', (_, over, opts, expected) => {
    expect(validateSettings({ ...valid, ...over } as never, opts)).toEqual(expected);
  });

  it('found by review: a malformed notify URL is named by its position, never echoed (a webhook path is a password)', () => {
    const secretPath = 'hooks.slack.com/services/T0AAAA/B0BBBB/XyZsecretWebhookToken123';
    const problems = validateSettings({ notifyUrls: ['https://ntfy.sh/backups', secretPath] }, { requireSecret: false });
    const about = problems.filter((p) => p.startsWith('notify-url'));
    expect(about).toEqual(['notify-url (2nd of 2) is not a URL']);
    expect(problems.join('\n')).not.toContain('XyZsecret');
  });

  it('names every problem at once, in the order of the options table', () => {
    expect(validateSettings({ listen: 'x' }, { requireSecret: true })).toEqual([
      'client-id is missing',
      'client-secret is missing',
      'tenant is missing',
      'authority is missing',
      'listen must be HOST:PORT, like 127.0.0.1:8080',
      'public-url is missing',
      'passcode is missing (run `broker init`)',
    ]);
  });
});

// Found by review.
describe('the app secret is never sent to a plain-http authority', () => {
  it('--authority http://login.microsoftonline.com is refused (http only for loopback test providers)', () => {
    expect(validateHttpUrl('http://login.microsoftonline.com', 'authority')).not.toBeNull();
    expect(validateHttpUrl('http://127.0.0.1:9999', 'authority')).toBeNull();
  });
});
