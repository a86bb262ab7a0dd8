import { isKeyId, parseAuthId } from '../crypto/authid.ts';
import { checkTagMatches, deriveKeys } from '../crypto/seal.ts';
import { loadSodium } from '../crypto/sodium.ts';
import { BrokerError } from '../errors.ts';
import { atProviderSentence, revokeGrantAtProvider } from '../broker/revoke.ts';
import type { SealedGrant } from '../broker/sealed-grant.ts';
import { silentLogger } from '../broker/context.ts';
import { OPTIONS, envValue } from '../config/options.ts';
import { readSettings, type Settings } from '../config/settings.ts';
import { openJson } from '../crypto/seal.ts';
import { findService, MICROSOFT } from '../oauth/providers.ts';
import type { Fetch } from '../oauth/token-endpoint.ts';
import { EXIT } from './exit-codes.ts';
import { brokerConfig } from './open.ts';
import type { Io } from './io.ts';
import { openStore } from './store-file.ts';

/**
 * `broker revoke <keyid or authid>`. The owner of the machine owns the store, so a
 * keyid is enough; an authid is accepted too, and then its secret must be right.
 * A running `serve` sees the change on its next request for that connection.
 */
export async function revokeCommand(home: string, io: Io, target: string, now: () => number = Date.now, fetch: Fetch = globalThis.fetch): Promise<number> {
  const text = target.trim();
  let keyid: string;
  let secretCheck: Uint8Array | undefined;
  let sealKey: Uint8Array | undefined;
  if (isKeyId(text.toLowerCase())) keyid = text.toLowerCase();
  else if (/[:]|%3a/i.test(text)) {
    const id = parseAuthId(text);
    keyid = id.keyid;
    const keys = deriveKeys(await loadSodium(), id);
    secretCheck = keys.checkTag;
    sealKey = keys.sealKey;
  } else {
    throw new BrokerError('usage', 'That is neither a keyid nor an AuthID.', { hint: 'Run `broker list` to see the keyids.' });
  }
  const store = await openStore(home, io.env);
  try {
    const record = await store.get(keyid);
    if (!record || (secretCheck && !checkTagMatches(await loadSodium(), secretCheck, record.checkTag))) {
      throw new BrokerError('not_found', `No connection with keyid ${keyid}${secretCheck ? ' and this secret' : ''}.`, {
        hint: 'Run `broker list` to see the keyids.',
      });
    }
    // Opened before the revoke deletes it: only an AuthID can, and only it can end the grant at the provider.
    const grant = sealKey && record.sealed ? openJson<SealedGrant>(await loadSodium(), sealKey, record.sealed) : null;
    if (!(await store.revoke(keyid, now()))) {
      io.out(`${keyid} was already revoked.`);
      return EXIT.ok;
    }
    io.out(`Revoked ${keyid}: its sealed refresh token is deleted and the AuthID stops working at once.`);
    const provider = findService(record.service)?.provider ?? MICROSOFT;
    if (!grant) {
      const how = provider.revocation === 'none' ? '' : ' (given the whole AuthID, the broker revokes there itself)';
      io.out(`To also remove the app's access at ${provider.name}${how}, open ${provider.accessUrl}`);
      return EXIT.ok;
    }
    const settings = readSettings(home);
    const config = brokerConfig({ ...settings, clientSecret: envValue(OPTIONS.clientSecret, io.env) ?? settings.clientSecret } as Settings);
    const r = await revokeGrantAtProvider({ config, fetch, now, log: silentLogger }, grant);
    const said = atProviderSentence(r);
    if (r.done === 'failed') {
      io.err(`broker: ${said}`);
      return EXIT.upstream;
    }
    if (said) io.out(said);
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
