import { readSettings } from '../config/settings.ts';
import type { ConnectionInfo } from '../store/types.ts';
import type { Io } from './io.ts';
import { printList } from './list-output.ts';
import { openStore } from './store-file.ts';

/** `broker list` the long way: any store (SQLite or PostgreSQL), opened as every command opens it. quick.ts has the short way. */
export async function listCommand(home: string, io: Io, opts: { json?: boolean }, now: () => number = Date.now): Promise<void> {
  const store = await openStore(home, io.env);
  let rows: ConnectionInfo[];
  try {
    rows = await store.list();
  } finally {
    await store.close();
  }
  const t = now();
  printList(rows, readSettings(home), io, opts, t);
}
