import { join } from 'node:path';
import { ensureHome, STORE_FILE } from '../config/home.ts';
import { Store } from '../store/store.ts';

/** The store in BROKER_HOME. Kept apart from open.ts so that `list` does not load libsodium and the domain. */
export function openStore(home: string): Store {
  ensureHome(home);
  return Store.open(join(home, STORE_FILE));
}
