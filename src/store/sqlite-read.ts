import { Database } from 'bun:sqlite';
import { MIGRATIONS } from './migrations.ts';
import { LIST_SQL, type Row, toInfo } from './sqlite-rows.ts';
import type { ConnectionInfo } from './types.ts';

/**
 * The existing store file at `path`, opened for `broker list`'s one read, without
 * the rest of a SqliteStore (its eleven other statements, change feed, migration
 * check). Opening writes nothing and reads only the file's header, so quick.ts
 * opens it while Bun's thread pool still looks at the files; `list` then reads; `close` either way.
 * Read-write, not read-only, like every other connection: the last one to close
 * checkpoints and removes the -wal and -shm files, which a read-only one would leave.
 */
export class StoreReader {
  private readonly db: Database;

  /** Throws when the file is missing (it is not created) or cannot be opened. */
  constructor(path: string) {
    this.db = new Database(path, { readwrite: true, create: false, strict: true });
  }

  /**
   * Every connection, or null when the store is not what SqliteStore.open leaves
   * as it is: a WAL store at the current schema. Then it converts, migrates (after
   * its backup) or refuses it as before. The other pragmas SqliteStore.open sets
   * matter only to a connection that writes: foreign_keys and secure_delete to its
   * statements, synchronous to its commits (the checkpoint the last connection
   * makes when it closes is synced alike at FULL and NORMAL).
   */
  list(): ConnectionInfo[] | null {
    this.db.exec('PRAGMA busy_timeout = 5000');
    const { user_version } = this.db.query<{ user_version: number }, []>('PRAGMA user_version').get()!;
    if (user_version !== MIGRATIONS.length) return null;
    const { journal_mode } = this.db.query<{ journal_mode: string }, []>('PRAGMA journal_mode').get()!;
    if (journal_mode !== 'wal') return null;
    // A loop, not map: see printList (cli/list-output.ts).
    const rows: ConnectionInfo[] = [];
    for (const r of this.db.query<Omit<Row, 'check_tag' | 'sealed'>, []>(LIST_SQL).all()) rows.push(toInfo(r));
    return rows;
  }

  close(): void {
    this.db.close();
  }
}
