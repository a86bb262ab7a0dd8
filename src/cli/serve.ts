import { statSync } from 'node:fs';
import { join } from 'node:path';
import { appSecretWarnings } from '../broker/lifecycle.ts';
import { brokerHome, SETTINGS_FILE } from '../config/home.ts';
import { isPlainHttpBeyondLocalhost, loadSettings, readSettings, validateListen, type Settings } from '../config/settings.ts';
import { BrokerError } from '../errors.ts';
import { makeLogger, type LogFormat } from '../log.ts';
import { startServer, type RunningServer, type TlsFiles } from '../server.ts';
import { VERSION } from '../version.ts';
import type { Io } from './io.ts';
import { brokerConfig, openBroker } from './open.ts';
import { displayName, OPTION_LIST, OPTIONS, serveValues } from '../config/options.ts';
import { startNotifications } from '../notify/setup.ts';

/** What commander hands `serve`: each option of the table under its flag's camelCase name. */
export type ServeFlags = Record<string, string | boolean | undefined>;

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

/** What `serve` runs with: the table's serve options (flag, else variable, else setting, else default), HTTPS when both files are given. */
interface Effective {
  listen: string;
  tls?: TlsFiles;
  metrics: boolean;
  metricsListen?: string;
  trustProxy: boolean;
  logFormat: string;
}

function effective(flags: ServeFlags, env: Record<string, string | undefined>, s: Partial<Settings>): Effective {
  const v = serveValues(flags, env, s);
  const { tlsCert: cert, tlsKey: key } = v;
  return {
    listen: v.listen ?? '',
    tls: cert && key ? { cert, key } : undefined,
    metrics: Boolean(v.metrics),
    metricsListen: v.metricsListen,
    trustProxy: Boolean(v.trustProxy),
    logFormat: v.logFormat ?? '',
  };
}

/** The settings a running `serve` applies only after a restart (they need a new socket), as the table marks them. */
const RESTART = OPTION_LIST.filter((o) => o.serve && o.restart).map((o) => o.name as 'listen' | 'metrics' | 'metricsListen');

/** How often `serve` looks at settings.json's modification time (one stat(2)). */
export const SETTINGS_POLL_MS = 2000;

/**
 * Runs until SIGTERM or SIGINT, then lets in-flight requests finish and exits 0.
 * The settings file is re-read on SIGHUP and when it changes (see reloadSettings).
 */
export async function serveCommand(flags: ServeFlags, io: Io): Promise<void> {
  const home = brokerHome(io.env);
  const format = effective(flags, io.env, readSettings(home)).logFormat as LogFormat;
  if (format !== 'text' && format !== 'json') throw new BrokerError('usage', '--log-format must be text or json.');
  // One write(2) per event-loop turn instead of one per line: under load, many lines share a syscall.
  const pending: string[] = [];
  const flush = () => {
    if (pending.length) io.err(pending.splice(0).join('\n'));
  };
  const log = makeLogger(format, (l) => {
    if (pending.push(l) === 1) setImmediate(flush);
  });
  // With JSON logs, a failure to start is a JSON line too (main then prints nothing).
  const failed = (e: unknown): unknown => {
    if (format !== 'json' || !(e instanceof BrokerError)) return e;
    log.error('serve.failed', { error: e.code, message: e.message, hint: e.hint });
    flush();
    return new BrokerError(e.code, e.message, { ...e.options, logged: true });
  };
  const { broker, settings, store } = await openBroker(home, io.env, { fetch: globalThis.fetch, now: Date.now, log, watch: true }).catch((e: unknown) => {
    throw failed(e);
  });
  let current = effective(flags, io.env, settings);
  let running: RunningServer;
  try {
    checkPublicUrl(settings, Boolean(flags.insecureHttp));
    const { hostname, port } = parseListen(current.listen);
    const { tlsCert, tlsKey } = serveValues(flags, io.env, settings);
    if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new BrokerError('usage', 'HTTPS needs both --tls-cert and --tls-key.');
    try {
      running = await startServer({
        broker,
        hostname,
        port,
        version: VERSION,
        log,
        tls: current.tls,
        metrics: current.metrics,
        metricsListen: current.metricsListen ? parseListen(current.metricsListen, '--metrics-listen') : undefined,
        trustProxy: () => current.trustProxy,
      });
    } catch (e) {
      if (e instanceof BrokerError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      // Not a configuration error: a port still held by a stopping process, or an address not up yet at boot, passes.
      throw new BrokerError('listen_failed', `Cannot listen on ${hostname}:${port}${code ? ` (${code})` : ''}.`, {
        hint:
          code === 'EADDRINUSE'
            ? 'Another program (or another broker) uses that port; choose another with --listen.'
            : 'Check --listen, the TLS files and --metrics-listen.',
        cause: e,
      });
    }
  } catch (e) {
    await store.close();
    throw failed(e);
  }
  for (const warning of appSecretWarnings(brokerConfig(settings), Date.now())) log.warn('app.secret_expiry', { warning });
  const notifications = startNotifications(broker, serveValues(flags, io.env, settings), { fetch: globalThis.fetch, now: Date.now, log });
  if (!running.url.startsWith('https:') && !/^(127\.|localhost$|::1$|\[::1\]$)/.test(new URL(running.url).hostname)) {
    // Reachable from other machines in plain http: AuthIDs and tokens would cross the network readable.
    log.warn('serve.plain_http_on_network', { listen: running.url, hint: 'use --tls-cert/--tls-key, or listen on 127.0.0.1 behind a reverse proxy' });
  }
  log.info('serve.started', { version: VERSION, listen: running.url, public_url: settings.publicUrl, metrics: running.metricsUrl, home });
  /**
   * The one place where new settings reach the running server: the broker's
   * config (passcode, app id and secret, tenant, authority, public URL, allowed
   * origins, secret expiry), the log format, --trust-proxy and the TLS file paths.
   * What needs a new socket is only named in a warning. A file that became
   * invalid changes nothing: the old settings stay, and an error is logged.
   */
  const reloadSettings = (trigger: string): void => {
    let next: Settings;
    try {
      next = loadSettings(home, io.env);
      checkPublicUrl(next, Boolean(flags.insecureHttp));
    } catch (e) {
      const b = e instanceof BrokerError ? e : new BrokerError('internal', 'The settings file could not be read.');
      log.error('settings.reload_failed', {
        trigger,
        error: b.code,
        reason: b.message,
        hint: 'the previous settings stay in use; fix the file (or run `broker init` again)',
      });
      return;
    }
    const now = effective(flags, io.env, next);
    const needRestart = [
      ...RESTART.filter((k) => now[k] !== current[k]).map((k) => displayName(OPTIONS[k])),
      // HTTPS on or off needs a new socket too; new file paths do not.
      Boolean(now.tls) !== Boolean(current.tls) && (now.tls ? 'tls-cert/tls-key (HTTPS on)' : 'tls-cert/tls-key (HTTPS off)'),
    ].filter((x): x is string => Boolean(x));
    if (needRestart.length) {
      log.warn('settings.restart_needed', {
        settings: needRestart.join(','),
        hint: 'these need a new socket: restart the broker (systemctl --user restart broker) to apply them; until then the old ones stay in use',
      });
    }
    broker.reconfigure(brokerConfig(next));
    notifications.update(serveValues(flags, io.env, next));
    if (now.logFormat === 'text' || now.logFormat === 'json') log.setFormat(now.logFormat);
    // HTTPS stays on or off; with it on, new file paths are read at once.
    const tls = current.tls && now.tls ? now.tls : current.tls;
    const newFiles = tls !== current.tls && (tls!.cert !== current.tls!.cert || tls!.key !== current.tls!.key);
    current = { ...now, ...Object.fromEntries(RESTART.map((k) => [k, current[k]])), tls };
    if (newFiles) {
      running.reloadTls(tls).then(
        () => log.info('tls.reloaded'),
        (e) => log.warn('tls.reload_failed', { error: e instanceof BrokerError ? e.message : 'error' }),
      );
    }
    log.info('settings.reloaded', { trigger, public_url: next.publicUrl });
    for (const warning of appSecretWarnings(brokerConfig(next), Date.now())) log.warn('app.secret_expiry', { warning });
  };

  // settings.json is replaced whole (written to a new file, then renamed), so its
  // inode, size or mtime change. Polled rather than watched: inotify watches follow
  // the old inode after a rename and are missing on some network file systems, and
  // one stat(2) every 2 s costs nothing.
  const settingsPath = join(home, SETTINGS_FILE);
  const signature = (): string => {
    try {
      const st = statSync(settingsPath);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  let seen = signature();
  const poll = setInterval(() => {
    const sig = signature();
    if (sig === seen) return;
    seen = sig;
    reloadSettings('settings.json changed');
  }, SETTINGS_POLL_MS);
  poll.unref();

  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  const onHup = () => {
    seen = signature();
    reloadSettings('SIGHUP');
    running.reloadTls(current.tls).then(
      () => {
        if (current.tls) log.info('tls.reloaded');
      },
      (e) => log.warn('tls.reload_failed', { error: e instanceof BrokerError ? e.message : 'error' }),
    );
  };
  const stop = (signal: string) => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    clearInterval(poll);
    notifications.stop();
    log.info('serve.stopping', { signal });
    running.stop().finally(stopped);
  };
  const onTerm = () => stop('SIGTERM');
  const onInt = () => stop('SIGINT');
  // Before the "listening on" line: a script (or systemd) that saw it may signal at once.
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);

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

  await done;
  await store.close();
  log.info('serve.stopped');
  flush();
}
