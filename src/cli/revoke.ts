import { isKeyId, parseAuthId } from '../crypto/authid.ts';
import { checkTagMatches, deriveKeys } from '../crypto/seal.ts';
import { loadSodium } from '../crypto/sodium.ts';
import { BrokerError } from '../errors.ts';
import { MICROSOFT } from '../oauth/services.ts';
import type { Io } from './io.ts';
import { openStore } from './store-file.ts';

/**
 * `broker revoke <keyid or authid>`. The owner of the machine owns the store, so a
 * keyid is enough; an authid is accepted too, and then its secret must be right.
 * A running `serve` sees the change on its next request for that connection.
 */
export async function revokeCommand(home: string, io: Io, target: string, now: () => number = Date.now): Promise<void> {
  const text = target.trim();
  let keyid: string;
  let secretCheck: Uint8Array | undefined;
  if (isKeyId(text.toLowerCase())) keyid = text.toLowerCase();
  else if (/[:]|%3a/i.test(text)) {
    const id = parseAuthId(text);
    keyid = id.keyid;
    secretCheck = deriveKeys(await loadSodium(), id).checkTag;
  } else {
    throw new BrokerError('usage', 'That is neither a keyid nor an AuthID.', { hint: 'Run `broker list` to see the keyids.' });
  }
  const store = openStore(home);
  try {
    const record = store.get(keyid);
    if (!record || (secretCheck && !checkTagMatches(await loadSodium(), secretCheck, record.checkTag))) {
      throw new BrokerError('not_found', `No connection with keyid ${keyid}${secretCheck ? ' and this secret' : ''}.`, {
        hint: 'Run `broker list` to see the keyids.',
      });
    }
    if (!store.revoke(keyid, now())) {
      io.out(`${keyid} was already revoked.`);
      return;
    }
    io.out(`Revoked ${keyid}: its sealed refresh token is deleted and the AuthID stops working at once.`);
    io.out(`To also remove the app's access at Microsoft, open ${MICROSOFT.accessUrl} → Apps and services that can access your data.`);
  } finally {
    store.close();
  }
}
