import { SETTINGS_FILE, STORE_FILE } from '../config/files.ts';
import type { Settings } from '../config/settings.ts';
import { EXIT } from '../errors.ts';
import type { StoreReader } from '../store/sqlite-read.ts';
import { bufferedIo, type Io, processIo } from './io.ts';

/**
 * `broker list` and `broker list --json` exactly, without commander: building the
 * whole program (every command and its options) costs more than listing. Anything
 * else (`list --help`, extra arguments) goes through main.ts as before;
 * bin/broker.ts chooses.
 *
 * The usual case, a private BROKER_HOME with a current SQLite store, is read here
 * (readQuickly) with Bun's own file calls and one SQL statement, and nothing
 * loaded here imports node:fs, node:path or node:os: node:fs alone takes about
 * 1.5 ms to load (the same reads through it measured 2.24x a hello-world's time
 * instead of 1.87x). Every other case goes to list.ts, the way every command opens a
 * store, which creates, migrates, tightens or refuses it, and reports errors, as
 * it always has.
 */
export async function quickList(args: readonly string[]): Promise<number> {
  // As main.ts: files the broker creates are for its user only.
  process.umask(0o077);
  const io = bufferedIo(processIo());
  const opts = { json: args[1] === '--json' };
  try {
    const found = await readQuickly(io.env);
    if (found) found.print(io, opts);
    else {
      const [{ listCommand }, { brokerHome }] = await Promise.all([import('./list.ts'), import('../config/home.ts')]);
      await listCommand(brokerHome(io.env), io, opts);
    }
    await io.flush();
    return EXIT.ok;
  } catch (err) {
    const { failed } = await import('./failed.ts');
    const code = failed(err, io);
    await io.flush();
    return code;
  }
}

/**
 * The connections and settings, ready to print, when nothing needs doing but
 * reading: the home folder and the store's files exist and are as private as
 * ensureHome and SqliteStore.open leave them, the settings parse and name no
 * PostgreSQL database, and the store is current. Null otherwise, and on any
 * error, which list.ts then meets (or mends) itself; nothing here writes.
 *
 * Bun looks at the files on its thread pool, which takes a while to start: the
 * SQLite and output code load, and the store file opens, meanwhile.
 */
async function readQuickly(env: Record<string, string | undefined>): Promise<{ print: (io: Io, opts: { json: boolean }) => void } | null> {
  const home = quickHome(env);
  // BROKER_DATABASE_URL (OPTIONS.databaseUrl): the store is in PostgreSQL.
  if (!home || env.BROKER_DATABASE_URL) return null;
  const path = `${home}/${STORE_FILE}`;
  const looked = Promise.all([readSettingsFile(`${home}/${SETTINGS_FILE}`), stat(home), stat(path), stat(`${path}-wal`), stat(`${path}-shm`)]);
  const [{ StoreReader }, { printList }] = await Promise.all([import('../store/sqlite-read.ts'), import('./list-output.ts')]);
  let reader: StoreReader;
  try {
    reader = new StoreReader(path);
  } catch {
    return null;
  }
  try {
    const [settings, folder, db, wal, shm] = await looked;
    const uid = process.getuid?.();
    // Ours: ensureHome refuses a folder that is not, and SqliteStore.open's chmod fails on a file that is not.
    const ours = (s: Stat): s is Status => s !== null && s !== 'missing' && (uid === undefined || s.uid === uid);
    const ownFolder = ours(folder) && folder.isDirectory() && (folder.mode & 0o077) === 0;
    // Exactly what that chmod leaves; -wal and -shm may be absent (SQLite then makes them with the store's mode).
    const ownFile = (s: Stat, mayBeMissing: boolean) => (s === 'missing' ? mayBeMissing : ours(s) && (s.mode & 0o7777) === 0o600);
    if (!settings || settings.databaseUrl || !ownFolder || !ownFile(db, false) || !ownFile(wal, true) || !ownFile(shm, true)) return null;
    const rows = reader.list();
    return rows && { print: (io, opts) => printList(rows, settings, io, opts, Date.now()) };
  } catch {
    return null;
  } finally {
    reader.close();
  }
}

/**
 * BROKER_HOME as brokerHome (home.ts) finds it, when path.join would leave it as it
 * is written: absolute, without `.`, `..` or empty segments. Null otherwise (and
 * when HOME is unset), for brokerHome itself to work out.
 */
export function quickHome(env: Record<string, string | undefined>): string | null {
  const plain = (p: string | null | undefined) => (p && /^(\/(?!\.\.?(\/|$))[^/]+)+$/.test(p) ? p : null);
  if (env.BROKER_HOME) return plain(env.BROKER_HOME);
  const base = plain(env.XDG_CONFIG_HOME || (env.HOME && `${env.HOME}/.config`));
  return base && `${base}/broker`;
}

type Status = Awaited<ReturnType<ReturnType<typeof Bun.file>['stat']>>;
type Stat = Status | 'missing' | null;

/** The file's status (following links, as chmod and SQLite do), 'missing', or null when it cannot be had. */
async function stat(path: string): Promise<Stat> {
  try {
    return await Bun.file(path).stat();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : null;
  }
}

/** settings.json as readSettings reads it ({} when there is none), or null when readSettings would fail or differ. */
async function readSettingsFile(path: string): Promise<Partial<Settings> | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Bun.file(path).bytes();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? {} : null;
  }
  try {
    // The byte-order mark kept, as readFileSync keeps it: JSON.parse then fails here as it does there.
    const s: unknown = JSON.parse(new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes));
    return s !== null && typeof s === 'object' && !Array.isArray(s) ? (s as Partial<Settings>) : null;
  } catch {
    return null;
  }
}
