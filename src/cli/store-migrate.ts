import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { SETTINGS_FILE } from '../config/home.ts';
import { validateDatabaseUrl } from '../config/validate.ts';
import { BrokerError } from '../errors.ts';
import { SqliteStore } from '../store/store.ts';
import type { Store } from '../store/types.ts';
import { serveAnswers } from './backup.ts';
import type { Io } from './io.ts';
import { databasePassword, openPostgres, openStore } from './store-file.ts';

const isDatabaseUrl = (to: string) => /^postgres(ql)?:\/\//i.test(to);

/**
 * `broker store migrate --to postgres://…|FILE`: copies every connection, exactly
 * as it is (versions, dates, sealed envelopes), from the store this BROKER_HOME
 * uses now into an empty one, so every AuthID keeps working without reconnecting.
 * `serve` must be stopped: a rotation written meanwhile would be lost.
 */
export async function storeMigrateCommand(home: string, io: Io, opts: { to: string }): Promise<void> {
  const to = opts.to.trim();
  if (isDatabaseUrl(to)) {
    const problem = validateDatabaseUrl(to);
    if (problem) throw new BrokerError('usage', `--to ${problem}.`);
  }
  const running = existsSync(`${home}/${SETTINGS_FILE}`) ? await serveAnswers(`${home}/${SETTINGS_FILE}`) : null;
  if (running) {
    throw new BrokerError('conflict', `broker serve is running for ${home} (it answers at ${running}); a refresh during the copy would be lost.`, {
      hint: 'Stop it first (e.g. systemctl stop broker), migrate, then start it on the new store.',
    });
  }
  const source = await openStore(home, io.env);
  let target: Store | undefined;
  try {
    target = isDatabaseUrl(to) ? await openPostgres(to, databasePassword(home, io.env, to)) : SqliteStore.open(resolve(to));
    if (target.where === source.where) throw new BrokerError('usage', 'The target is the store in use.', { hint: 'Give another database or file with --to.' });
    const present = (await target.countByState()).reduce((a, c) => a + c.count, 0);
    if (present > 0) {
      throw new BrokerError('conflict', `${target.where} already holds ${present} connection(s); migrate only into an empty store.`, {
        hint: 'Give an empty database (CREATE DATABASE …) or a new file.',
      });
    }
    let copied = 0;
    for await (const rows of source.exportAll()) {
      await target.importRows(rows);
      copied += rows.length;
    }
    const landed = (await target.countByState()).reduce((a, c) => a + c.count, 0);
    if (landed !== copied) throw new BrokerError('store_error', `Only ${landed} of ${copied} connections arrived in ${target.where}.`);
    io.out(`Copied ${copied} connection(s) from ${source.where} to ${target.where}.`);
    io.err(
      isDatabaseUrl(to)
        ? `next: run \`broker init --database-url ${target.where}\` (or set BROKER_DATABASE_URL) on every instance, then start serve`
        : "next: remove --database-url from the settings (broker init) and unset BROKER_DATABASE_URL, point BROKER_HOME at that file's folder as broker.db, then start serve",
    );
  } finally {
    await target?.close();
    await source.close();
  }
}
