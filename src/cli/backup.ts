import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ensureHome, SETTINGS_FILE, STORE_FILE } from '../config/home.ts';
import { BrokerError } from '../errors.ts';
import { type BackupInfo, countConnections, readBackup, restoreStore, writeBackup } from '../store/backup.ts';
import { VERSION } from '../version.ts';
import type { Io } from './io.ts';
import { SqliteStore } from '../store/store.ts';
import { databaseUrl } from './store-file.ts';

/** `broker backup FILE`: settings and store in one file, consistent while `serve` runs. */
export async function backupCommand(home: string, io: Io, fileArg: string, opts: { force?: boolean }, now: () => number = Date.now): Promise<void> {
  if (databaseUrl(home, io.env)) {
    throw new BrokerError('usage', 'The store is in PostgreSQL (--database-url): back it up with pg_dump, and settings.json with it.', {
      hint: '`broker store migrate --to FILE` copies it into a SQLite file, which `broker backup` can then take.',
    });
  }
  const file = resolve(fileArg);
  const settingsPath = join(home, SETTINGS_FILE);
  const settings = existsSync(settingsPath) ? readFileSync(settingsPath, 'utf8') : null;
  if (settings === null && !existsSync(join(home, STORE_FILE))) {
    throw new BrokerError('config_missing', `Nothing to back up in ${home}: no settings and no store.`, {
      hint: 'Set BROKER_HOME to the folder the broker uses.',
    });
  }
  if (existsSync(file) && !opts.force) {
    throw new BrokerError('usage', `${file} exists already.`, { hint: 'Give another file name, or add --force to replace it.' });
  }
  // A new folder for it is private like BROKER_HOME; an existing one is the user's choice.
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  ensureHome(home);
  const store = SqliteStore.open(join(home, STORE_FILE));
  let info: BackupInfo;
  try {
    info = writeBackup(store, file, { settings, brokerVersion: VERSION, now: now() });
  } finally {
    await store.close();
  }
  io.out(`Backed up ${info.connections} connection(s)${settings === null ? '' : ' and the settings'} to ${file}.`);
  io.err('note: the backup holds the app secret and the sealed tokens (no AuthID): keep it as private as BROKER_HOME.');
}

/** `broker restore FILE`: puts a backup's settings and store into BROKER_HOME. */
export async function restoreCommand(home: string, io: Io, fileArg: string, opts: { force?: boolean }): Promise<void> {
  const file = resolve(fileArg);
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new BrokerError('not_found', `No backup file at ${file}.`, { hint: 'Give the path of a file made by `broker backup`.' });
  }
  const backup = readBackup(file);
  const settingsPath = join(home, SETTINGS_FILE);
  const storePath = join(home, STORE_FILE);
  const running = existsSync(settingsPath) ? await serveAnswers(settingsPath) : null;
  if (running) {
    throw new BrokerError('conflict', `broker serve is running for ${home} (it answers at ${running}); restoring under it would lose writes.`, {
      hint: 'Stop it first (e.g. systemctl stop broker), restore, then start it again.',
    });
  }
  const present = countConnections(storePath);
  if ((present > 0 || existsSync(settingsPath)) && !opts.force) {
    const what = [present > 0 ? `${Number.isFinite(present) ? present : 'a store with unknown'} connection(s)` : '', existsSync(settingsPath) ? 'settings' : '']
      .filter(Boolean)
      .join(' and ');
    throw new BrokerError('conflict', `${home} already holds ${what}; restore would replace them.`, {
      hint: 'Back them up first if you need them (broker backup FILE), then add --force.',
    });
  }
  ensureHome(home);
  restoreStore(file, storePath);
  if (backup.settings !== null) {
    const tmp = `${settingsPath}.tmp-${process.pid}`;
    writeFileSync(tmp, backup.settings, { mode: 0o600 });
    renameSync(tmp, settingsPath);
  }
  io.out(
    `Restored ${backup.connections} connection(s)${backup.settings === null ? '' : ' and the settings'} from ${file} (made ${backup.createdAt} by broker ${backup.brokerVersion}).`,
  );
}

/**
 * Whether something answers HTTP at the listen address the settings name: the
 * running `serve` for this BROKER_HOME, as far as can be told without a lock it
 * would have to hold. Returns the URL it answered at, or null.
 */
export async function serveAnswers(settingsPath: string): Promise<string | null> {
  let s: { listen?: unknown; tlsCert?: unknown };
  try {
    s = JSON.parse(readFileSync(settingsPath, 'utf8')) as typeof s;
  } catch {
    return null;
  }
  const m = typeof s.listen === 'string' ? /^(.*):(\d+)$/.exec(s.listen) : null;
  if (!m) return null;
  let host = m[1]!.replace(/^\[|\]$/g, '');
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const url = `${s.tlsCert ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${m[2]}/healthz`;
  try {
    // Only "does anything answer": a self-signed certificate is as good an answer as any.
    await fetch(url, { signal: AbortSignal.timeout(2000), tls: { rejectUnauthorized: false } } as RequestInit);
    return url;
  } catch {
    return null;
  }
}
