import { brokerHome } from '../config/home.ts';
import { BrokerError } from '../errors.ts';
import { makeLogger } from '../log.ts';
import { DEFAULT_SERVICE_ID, findService } from '../oauth/services.ts';
import type { Io } from './io.ts';
import { openBroker } from './open.ts';

/**
 * `broker connect`: the login without a browser on this machine (a NAS without a
 * public HTTPS name). The user opens the printed URL on any device; Microsoft
 * then sends that browser to {public-url}/logged-in, which may fail to load, and
 * the user pastes that address back here. State, PKCE and nonce are enforced as
 * in the browser flow; this process takes the place of the login cookie.
 */
export async function connectCommand(flags: { service?: string }, io: Io): Promise<void> {
  const home = brokerHome(io.env);
  const log = makeLogger('text', () => {});
  const { broker, settings, store } = await openBroker(home, io.env, { fetch: globalThis.fetch, now: Date.now, log });
  try {
    const serviceId = flags.service ?? DEFAULT_SERVICE_ID;
    const started = await broker.login.startAsOwner(serviceId);
    const provider = findService(serviceId)?.provider.name ?? 'The provider';
    io.err('1. Open this address in a browser on any device and sign in:\n');
    io.err(`   ${started.authorizeUrl}\n`);
    io.err(`2. ${provider} then sends the browser to ${settings.publicUrl}/logged-in?code=…`);
    io.err('   That page may not load (nothing listens there); that is expected.');
    io.err("3. Copy the whole address from the browser's address bar and paste it here (within 10 minutes):");
    const pasted = (await io.readLine(started.maxAgeSeconds * 1000)).trim();
    if (!pasted) throw new BrokerError('usage', 'Nothing was pasted.', { hint: 'Run `broker connect` again.' });
    let url: URL;
    try {
      url = new URL(pasted);
    } catch {
      throw new BrokerError('usage', 'That is not an address.', { hint: `Paste the whole address starting with ${settings.publicUrl}/logged-in?` });
    }
    const expected = new URL(`${settings.publicUrl}/logged-in`);
    if (url.origin !== expected.origin || url.pathname !== expected.pathname) {
      throw new BrokerError('usage', `That address does not start with ${expected.href}.`, {
        hint: 'Paste the address the browser ended on after signing in.',
      });
    }
    const q = url.searchParams;
    const result = await broker.login.finish({
      state: q.get('state'),
      code: q.get('code'),
      error: q.get('error'),
      cookieValue: started.cookieValue,
      hostname: q.get('hostname'),
    });
    if (result.keptNothing) {
      io.err(`\nConnected ${result.service.name}. ${result.service.provider.note ?? ''}`);
      io.err('Its access token (shown once; give it to Duplicati as --authid):\n');
      io.out(result.authid);
      return;
    }
    io.err(`\nConnected ${result.service.name} as ${result.account.username ?? result.account.name ?? 'your account'} (keyid ${result.keyid}).`);
    io.err('Your AuthID (shown once; keep it like a password):\n');
    // The authid alone on stdout, so that `AUTHID=$(broker connect)` works.
    io.out(result.authid);
  } finally {
    await store.close();
  }
}
