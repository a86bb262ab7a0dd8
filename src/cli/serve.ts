import { secretWarning } from '../broker/lifecycle.ts';
import { brokerHome } from '../config/home.ts';
import { isPlainHttpBeyondLocalhost, readSettings, validateListen, type Settings } from '../config/settings.ts';
import { BrokerError } from '../errors.ts';
import { makeLogger, type LogFormat } from '../log.ts';
import { startServer, type RunningServer } from '../server.ts';
import { VERSION } from '../version.ts';
import type { Io } from './io.ts';
import { openBroker } from './open.ts';

export interface ServeFlags {
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureHttp?: boolean;
  logFormat?: string;
  metrics?: boolean;
  metricsListen?: string;
  trustProxy?: boolean;
}

export function parseListen(v: string, flag = '--listen'): { hostname: string; port: number } {
  const problem = validateListen(v);
  if (problem) throw new BrokerError('usage', `${flag} ${problem}.`);
  const i = v.lastIndexOf(':');
  return { hostname: v.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(v.slice(i + 1)) };
}

/**
 * Microsoft accepts http redirect URIs only for localhost, and an authid or a
 * passcode sent over plain http to another machine can be read on the way.
 */
export function checkPublicUrl(s: Pick<Settings, 'publicUrl' | 'insecureHttp'>, insecureFlag: boolean): void {
  if (isPlainHttpBeyondLocalhost(new URL(s.publicUrl)) && !insecureFlag && !s.insecureHttp) {
    throw new BrokerError('config_invalid', `The public URL ${s.publicUrl} is plain http on a host other than localhost.`, {
      hint: 'Microsoft only accepts http redirect URIs for localhost, and AuthIDs would cross the network unencrypted. Use https (--tls-cert/--tls-key or a reverse proxy), or pass --insecure-http if you really mean it.',
    });
  }
}

/** Runs until SIGTERM or SIGINT, then lets in-flight requests finish and exits 0. SIGHUP re-reads the TLS files. */
export async function serveCommand(flags: ServeFlags, io: Io): Promise<void> {
  const home = brokerHome(io.env);
  const format = (flags.logFormat ?? io.env.BROKER_LOG_FORMAT ?? readSettings(home).logFormat ?? 'text') as LogFormat;
  if (format !== 'text' && format !== 'json') throw new BrokerError('usage', '--log-format must be text or json.');
  // One write(2) per event-loop turn instead of one per line: under load, many lines share a syscall.
  const pending: string[] = [];
  const flush = () => {
    if (pending.length) io.err(pending.splice(0).join('\n'));
  };
  const log = makeLogger(format, (l) => {
    if (pending.push(l) === 1) setImmediate(flush);
  });
  const { broker, settings, store } = await openBroker(home, io.env, { fetch: globalThis.fetch, now: Date.now, log });
  let running: RunningServer;
  try {
    checkPublicUrl(settings, Boolean(flags.insecureHttp));
    const { hostname, port } = parseListen(flags.listen ?? io.env.BROKER_LISTEN ?? settings.listen);
    const cert = flags.tlsCert ?? settings.tlsCert;
    const key = flags.tlsKey ?? settings.tlsKey;
    if (Boolean(cert) !== Boolean(key)) throw new BrokerError('usage', 'HTTPS needs both --tls-cert and --tls-key.');
    const metricsListenText = flags.metricsListen ?? settings.metricsListen;
    try {
      running = await startServer({
        broker,
        hostname,
        port,
        version: VERSION,
        log,
        tls: cert && key ? { cert, key } : undefined,
        metrics: Boolean(flags.metrics ?? settings.metrics),
        metricsListen: metricsListenText ? parseListen(metricsListenText, '--metrics-listen') : undefined,
        trustProxy: Boolean(flags.trustProxy ?? settings.trustProxy),
      });
    } catch (e) {
      if (e instanceof BrokerError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      // Not a configuration error: a port still held by a stopping process, or an address not up yet at boot, passes.
      throw new BrokerError('listen_failed', `Cannot listen on ${hostname}:${port}${code ? ` (${code})` : ''}.`, {
        hint: code === 'EADDRINUSE' ? 'Another program (or another broker) uses that port; choose another with --listen.' : 'Check --listen, the TLS files and --metrics-listen.',
        cause: e,
      });
    }
  } catch (e) {
    store.close();
    throw e;
  }
  const secret = secretWarning(settings.secretExpires, Date.now());
  if (secret) log.warn('app.secret_expiry', { warning: secret });
  if (!running.url.startsWith('https:') && !/^(127\.|localhost$|::1$|\[::1\]$)/.test(new URL(running.url).hostname)) {
    // Reachable from other machines in plain http: AuthIDs and tokens would cross the network readable.
    log.warn('serve.plain_http_on_network', { listen: running.url, hint: 'use --tls-cert/--tls-key, or listen on 127.0.0.1 behind a reverse proxy' });
  }
  log.info('serve.started', { version: VERSION, listen: running.url, public_url: settings.publicUrl, metrics: running.metricsUrl, home });
  const listening = `broker ${VERSION} listening on ${running.url}`;
  const connectHere = `Connect a OneDrive at ${settings.publicUrl}/ (redirect URI ${settings.publicUrl}/logged-in)`;
  if (format === 'json') {
    // A log shipper parses every line: the lines meant for a person are events too, text kept in `message`.
    log.info('serve.listening', { message: listening, url: running.url });
    log.info('serve.connect_here', { message: connectHere, public_url: settings.publicUrl });
    flush();
  } else {
    flush(); // start-up lines come before the "listening on" line that scripts wait for
    io.err(listening);
    io.err(connectHere);
  }

  await new Promise<void>((resolve) => {
    const onHup = () => {
      running.reloadTls().then(
        () => log.info('tls.reloaded'),
        (e) => log.warn('tls.reload_failed', { error: e instanceof BrokerError ? e.message : 'error' }),
      );
    };
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      log.info('serve.stopping', { signal });
      running.stop().finally(resolve);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    process.on('SIGHUP', onHup);
  });
  store.close();
  log.info('serve.stopped');
  flush();
}
