import { brokerHome } from '../config/home.ts';
import { validateListen } from '../config/settings.ts';
import { secretWarning } from '../broker/lifecycle.ts';
import { BrokerError } from '../errors.ts';
import { textLogger } from '../log.ts';
import { startServer } from '../server.ts';
import { VERSION } from '../version.ts';
import type { Io } from './io.ts';
import { openBroker } from './open.ts';

export function parseListen(v: string): { hostname: string; port: number } {
  const problem = validateListen(v);
  if (problem) throw new BrokerError('usage', `--listen ${problem}.`);
  const i = v.lastIndexOf(':');
  return { hostname: v.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(v.slice(i + 1)) };
}

/** Runs until SIGTERM or SIGINT, then lets in-flight requests finish and exits 0. */
export async function serveCommand(flags: { listen?: string }, io: Io): Promise<void> {
  const home = brokerHome(io.env);
  const log = textLogger((l) => io.err(l));
  const { broker, settings, store } = await openBroker(home, io.env, { fetch: globalThis.fetch, now: Date.now, log });
  const { hostname, port } = parseListen(flags.listen ?? io.env.BROKER_LISTEN ?? settings.listen);
  let running;
  try {
    running = startServer({ broker, hostname, port, version: VERSION, log });
  } catch (e) {
    store.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new BrokerError('config_invalid', `Cannot listen on ${hostname}:${port}${code ? ` (${code})` : ''}.`, {
      hint: code === 'EADDRINUSE' ? 'Another program uses that port; choose another with --listen.' : 'Check --listen.',
      cause: e,
    });
  }
  log.info('serve.started', { version: VERSION, listen: running.url, public_url: settings.publicUrl, home });
  const secret = secretWarning(settings.secretExpires, Date.now());
  if (secret) log.warn('app.secret_expiry', { warning: secret });
  io.err(`broker ${VERSION} listening on ${running.url}`);
  io.err(`Connect a OneDrive at ${settings.publicUrl}/ (redirect URI ${settings.publicUrl}/logged-in)`);

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      log.info('serve.stopping', { signal });
      running.stop().finally(resolve);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  store.close();
  log.info('serve.stopped');
}
