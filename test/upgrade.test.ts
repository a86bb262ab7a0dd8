/**
 * Upgrades never lose data: a copy of the store before a migration, a clear
 * refusal of a store from a newer broker, and `broker backup` / `broker restore`
 * (settings and store together, taken while `serve` runs) that keep every AuthID working.
 */
import { Database } from 'bun:sqlite';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/store/migrations.ts';
import { KEEP_MIGRATION_BACKUPS, SqliteStore } from '../src/store/store.ts';
import { configuredHome, connectOverHttp, LOOPBACK_CALLBACK, run, serve } from './support/binary.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const tag = new Uint8Array(32).fill(7);
const box = (n: number) => new Uint8Array(64).fill(n);
const userVersion = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;
  } finally {
    db.close();
  }
};

describe('store migrations', () => {
  // Fake later schema versions on top of the first released one, so that the
  // mechanism is proven whatever the released schema has grown to.
  const v1 = MIGRATIONS.slice(0, 1);
  const v2 = [...v1, 'ALTER TABLE connections ADD COLUMN note TEXT'];
  const v3 = [...v2, 'CREATE TABLE extra (id INTEGER PRIMARY KEY) STRICT'];

  async function storeAtV1(): Promise<string> {
    const path = join(mkdtempSync(join(tmpdir(), 'broker-upgrade-')), 'broker.db');
    const s = SqliteStore.open(path, { migrations: v1 });
    await s.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    await s.close();
    return path;
  }

  it('copies a store made by the previous schema before migrating it, and the copy is that store as it was', async () => {
    const path = await storeAtV1();
    const upgraded = SqliteStore.open(path, { migrations: v2 });
    expect(upgraded.schemaVersion()).toBe(2);
    expect((await upgraded.get('bk1a'))?.sealed).toEqual(box(1));
    await upgraded.close();
    const bak = `${path}.bak-v1`;
    expect(statSync(bak).mode & 0o777).toBe(0o600);
    expect(userVersion(bak)).toBe(1);
    // The copy opens with the first schema and holds the connection untouched.
    const old = SqliteStore.open(bak, { migrations: v1 });
    expect((await old.get('bk1a'))?.sealed).toEqual(box(1));
    await old.close();
    // Opening again at the same schema makes no new copy.
    SqliteStore.open(path, { migrations: v2 }).close();
    expect(readdirSync(dirname(path)).filter((f) => f.includes('.bak-'))).toEqual(['broker.db.bak-v1']);
  });

  it('a new store has nothing to copy; older copies beyond the last few are removed', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'broker-upgrade-')), 'broker.db');
    SqliteStore.open(path, { migrations: v3 }).close();
    expect(readdirSync(dirname(path)).filter((f) => f.includes('.bak-'))).toEqual([]);
    // Old copies left by earlier upgrades (v0 stands in for versions long gone).
    for (const v of [0, 1]) copyFileSync(path, `${path}.bak-v${v}`);
    copyFileSync(path, `${path}.bak-v2`);
    const p2 = await storeAtV1();
    for (const v of [0, 2, 5]) copyFileSync(p2, `${p2}.bak-v${v}`);
    SqliteStore.open(p2, { migrations: v3 }).close();
    const left = readdirSync(dirname(p2))
      .filter((f) => f.includes('.bak-'))
      .sort();
    expect(left).toHaveLength(KEEP_MIGRATION_BACKUPS);
    expect(left).toEqual(['broker.db.bak-v1', 'broker.db.bak-v2', 'broker.db.bak-v5']);
  });

  it('`broker list` migrates a store of an older schema, after its copy, and lists it', async () => {
    const path = await storeAtV1();
    const r = await run(['list', '--json'], { BROKER_HOME: dirname(path) });
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { keyid: string }[]).map((c) => c.keyid)).toEqual(['bk1a']);
    expect(userVersion(path)).toBe(MIGRATIONS.length);
    expect(userVersion(`${path}.bak-v1`)).toBe(1);
  });

  it('refuses a store from a newer broker with a hint to upgrade, and leaves the file as it was', async () => {
    const path = await storeAtV1();
    const db = new Database(path);
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    db.exec('PRAGMA journal_mode = DELETE');
    db.close();
    const before = statSync(path).mtimeMs;
    expect(() => SqliteStore.open(path)).toThrow(/newer than this broker understands/);
    expect(statSync(path).mtimeMs).toBe(before);
    // What a user sees from the binary: exit 5 (store), the reason, and what to do.
    const r = await run(['list'], { BROKER_HOME: dirname(path) });
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`schema version ${MIGRATIONS.length + 1}, newer than this broker understands (${MIGRATIONS.length})`);
    expect(r.stderr).toMatch(/hint: upgrade broker/i);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });
});

describe('broker backup and restore', () => {
  const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });

  it('a backup taken while serve runs, restored into an empty BROKER_HOME, serves the old AuthID', { timeout: 60_000 }, async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    const env = { BROKER_HOME: home };
    let served = await serve(home);
    const file = join(mkdtempSync(join(tmpdir(), 'broker-backups-')), 'nested', 'broker.backup');
    let authid: string;
    // A 30-second access token is never served from the store: the refresh after the restore must use the restored refresh token.
    entra.setAccessTokenTtl(30);
    try {
      ({ authid } = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'backup-user' }));
      const b = await run(['backup', file], env);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout).toContain('Backed up 1 connection(s) and the settings');
      expect(b.stderr).toMatch(/holds the app secret and the sealed tokens \(no AuthID\)/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(file)).mode & 0o777).toBe(0o700);
      // The AuthID's secret is nowhere in it.
      const { readFileSync } = await import('node:fs');
      expect(readFileSync(file).includes(Buffer.from(authid.split(':')[1]!))).toBe(false);
      expect((await run(['backup', file], env)).code).toBe(2);

      const busy = await run(['restore', '--force', file], env);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/broker serve is running/);
    } finally {
      await served.stop();
    }
    const notEmpty = await run(['restore', file], env);
    expect(notEmpty.code).toBe(1);
    expect(notEmpty.stderr).toMatch(/already holds 1 connection\(s\) and settings.*\n.*--force/);

    rmSync(home, { recursive: true, force: true });
    const r = await run(['restore', file], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Restored 1 connection\(s\) and the settings/);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(home)) expect(statSync(join(home, f)).mode & 0o777).toBe(0o600);

    served = await serve(home);
    try {
      entra.resetStats();
      const res = await fetch(`${served.url}/refresh`, { headers: { 'x-authid': authid } });
      expect(res.status, res.headers.get('x-reason') ?? '').toBe(200);
      expect(entra.stats().tokenRequests).toBe(1);
      expect(entra.stats().reuseDetected).toBe(0);
    } finally {
      entra.setAccessTokenTtl(3600);
      await served.stop();
    }
  });

  it('restore refuses a file that is not a backup', async () => {
    const home = join(mkdtempSync(join(tmpdir(), 'broker-restore-')), 'home');
    const r = await run(['restore', '/etc/hostname'], { BROKER_HOME: home });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not a broker backup/);
    expect(existsSync(home)).toBe(false);
  });
});
