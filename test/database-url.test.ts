/**
 * Where the PostgreSQL store's URL and password come from (cli/store-file.ts), and
 * the check of the URL: the password is taken, first source wins, from the URL,
 * --database-password-file, the systemd credential, PGPASSWORD; it is never shown.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { databasePassword, databaseUrl } from '../src/cli/store-file.ts';
import { validateDatabaseUrl } from '../src/config/validate.ts';
import { redactDatabaseUrl } from '../src/store/postgres.ts';

function home(settings: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-dburl-'));
  writeFileSync(join(dir, 'settings.json'), JSON.stringify(settings));
  return dir;
}

describe('the database URL', () => {
  it('BROKER_DATABASE_URL overrides the setting; neither means SQLite', () => {
    const h = home({ databaseUrl: 'postgres://broker@db:5432/from-settings' });
    expect(databaseUrl(h, {})).toBe('postgres://broker@db:5432/from-settings');
    expect(databaseUrl(h, { BROKER_DATABASE_URL: 'postgres://broker@db:5432/from-env' })).toBe('postgres://broker@db:5432/from-env');
    expect(databaseUrl(home({}), {})).toBeNull();
  });

  it.each([
    ['postgres://broker@db.example.org:5432/broker', null],
    ['postgresql://broker@db/broker?sslmode=verify-full', null],
    ['mysql://broker@db/broker', /postgres:\/\//],
    ['postgres://broker@db:5432/', /name a database/],
    ['postgres://broker@db/broker?sslmode=sometimes', /sslmode/],
    ['not a url', /URL like/],
  ])('%s', (url, problem) => {
    const p = validateDatabaseUrl(url);
    if (problem === null) expect(p).toBeNull();
    else expect(p).toMatch(problem);
  });

  it('is shown without its password', () => {
    expect(redactDatabaseUrl('postgres://broker:s3cret@db:5432/broker?sslmode=require')).toBe('postgres://broker@db:5432/broker?sslmode=require');
  });
});

describe("the database user's password", () => {
  const url = 'postgres://broker@db:5432/broker';
  it('first source wins: URL, --database-password-file, the credential, PGPASSWORD', () => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-dbpw-'));
    writeFileSync(join(dir, 'file'), 'from-file\n');
    const creds = mkdtempSync(join(tmpdir(), 'broker-creds-'));
    writeFileSync(join(creds, 'database-password'), 'from-credential\n');
    const env = { CREDENTIALS_DIRECTORY: creds, PGPASSWORD: 'from-env' };
    // In the URL: Bun.SQL takes it from there, nothing else is read.
    expect(databasePassword(home({}), env, 'postgres://broker:in-url@db/broker')).toBeUndefined();
    expect(databasePassword(home({ databasePasswordFile: join(dir, 'file') }), env, url)).toBe('from-file');
    expect(databasePassword(home({}), env, url)).toBe('from-credential');
    expect(databasePassword(home({}), { PGPASSWORD: 'from-env' }, url)).toBe('from-env');
    expect(databasePassword(home({}), {}, url)).toBeUndefined();
  });

  it('a password file that cannot be read is a configuration error naming the file, not the password', () => {
    expect(() => databasePassword(home({ databasePasswordFile: '/nonexistent/db-password' }), {}, url)).toThrow(/\/nonexistent\/db-password: ENOENT/);
  });
});
