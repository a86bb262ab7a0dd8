/**
 * BROKER_HOME holds the app secret and the store: the broker uses only a folder
 * that is its user's own. Through the compiled binary.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from './support/binary.ts';
import { unavailable } from './support/requires.ts';

const CLIENT_ID = '00000000-0000-0000-0000-0000000000a1';
const folder = (mode: number): string => {
  const dir = join(mkdtempSync(join(tmpdir(), 'broker-home-')), 'home');
  mkdirSync(dir);
  chmodSync(dir, mode);
  return dir;
};
const init = (home: string) =>
  run(['init', '--non-interactive', '--client-id', CLIENT_ID, '--authority', 'http://127.0.0.1:9'], {
    BROKER_HOME: home,
    BROKER_CLIENT_SECRET: 'x~home-test-secret',
  });

const noChown = unavailable('home.test.ts', 'a BROKER_HOME that belongs to another user', process.getuid?.() === 0 ? null : 'chown to another uid needs root');

describe("BROKER_HOME must be the user's own folder", () => {
  it.skipIf(noChown)('a folder another user owns is refused by init and serve (exit 3) and left as it was', async () => {
    const home = folder(0o700);
    expect((await init(home)).code).toBe(0);
    // Handed over to someone else (or BROKER_HOME pointed at their folder).
    chmodSync(home, 0o755);
    chownSync(home, 65534, 65534);
    const before = readdirSync(home).sort();
    for (const r of [await run(['serve'], { BROKER_HOME: home }), await init(home)]) {
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/BROKER_HOME .* belongs to another user \(uid 65534/);
      expect(r.stderr).toMatch(/hint: /);
      expect(r.stderr).not.toContain('home-test-secret');
    }
    expect(statSync(home).mode & 0o777).toBe(0o755);
    expect(readdirSync(home).sort()).toEqual(before);
  });

  it("a world-writable folder is refused (exit 3), even the user's own", async () => {
    const home = folder(0o777);
    const r = await init(home);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/is writable by everyone \(mode 777\)/);
    expect(statSync(home).mode & 0o777).toBe(0o777);
    expect(readdirSync(home)).toEqual([]);
  });

  it("the user's own folder readable by others (0755) is tightened to 0700 and used", async () => {
    const home = folder(0o755);
    const r = await init(home);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(home).mode & 0o777).toBe(0o700);
  });

  it('`list` tightens the folder and the store it finds loose, as every command does, and leaves no files of its own', async () => {
    const home = folder(0o700);
    expect((await init(home)).code).toBe(0);
    expect((await run(['list'], { BROKER_HOME: home })).code).toBe(0);
    const before = readdirSync(home).sort();
    expect(before).toEqual(['broker.db', 'settings.json']);
    chmodSync(home, 0o750);
    chmodSync(join(home, 'broker.db'), 0o644);
    const loose = await run(['list'], { BROKER_HOME: home });
    expect(loose.code, loose.stderr).toBe(0);
    expect(loose.stdout).toMatch(/^Apps: Microsoft \(client id /);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    expect(statSync(join(home, 'broker.db')).mode & 0o777).toBe(0o600);
    // As private as that, `list` only reads: the -wal and -shm files SQLite makes for the read go when it closes.
    const again = await run(['list', '--json'], { BROKER_HOME: home });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual([]);
    expect(readdirSync(home).sort()).toEqual(before);
  });
});
