import type { Server } from 'bun';
import { connect } from 'node:net';
import type { Broker } from './broker/broker.ts';
import { BrokerError } from './errors.ts';
import { type ClientInfo, createApp } from './http/app.ts';
import { MAX_FORM_BYTES } from './http/request.ts';
import type { RequestLogger } from './log.ts';
import { Metrics } from './metrics.ts';

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface RunningServer {
  url: string;
  metricsUrl?: string;
  /** Re-reads the certificate and key (SIGHUP), from new paths if given, without dropping connections. */
  reloadTls(files?: TlsFiles): Promise<void>;
  /** Stops accepting, lets in-flight requests finish, then resolves. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  broker: Broker;
  hostname: string;
  port: number;
  version: string;
  log: RequestLogger;
  tls?: TlsFiles;
  /** Serve /metrics on the main listener. */
  metrics?: boolean;
  /** Serve /metrics only on this separate address. */
  metricsListen?: { hostname: string; port: number };
  /** Behind a reverse proxy on this machine: take the client address from X-Forwarded-For (read per request: settings reload). */
  trustProxy?: boolean | (() => boolean);
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/**
 * The address rate limits count against. Behind a local reverse proxy every
 * request comes from loopback; the proxy appends the real client as the LAST
 * X-Forwarded-For entry (earlier entries are whatever the client sent).
 */
export function clientAddress(peer: string, forwardedFor: string | null, trustProxy: boolean): string {
  if (!trustProxy || !forwardedFor || !LOOPBACK.test(peer)) return peer;
  const last = forwardedFor.split(',').at(-1)?.trim();
  return last && last.length <= 64 ? last : peer;
}

/**
 * The client's address, looked up only when a handler needs it (rate limits):
 * requestIP is a getpeername(2) per call. A class, so that the getter is on the
 * prototype and a request costs one small allocation.
 */
class PeerAddress implements ClientInfo {
  private known?: string;

  constructor(
    private readonly req: Request,
    private readonly srv: Server<undefined>,
    private readonly trustProxy: () => boolean,
  ) {}

  get address(): string {
    return (this.known ??= clientAddress(this.srv.requestIP(this.req)?.address ?? 'unknown', this.req.headers.get('x-forwarded-for'), this.trustProxy()));
  }
}

/** The only place that binds sockets. */
export async function startServer(p: ServerOptions): Promise<RunningServer> {
  const metrics = p.metrics || p.metricsListen ? new Metrics(p.broker.ctx.store) : undefined;
  if (metrics) p.broker.ctx.observer = metrics;
  const app = createApp({
    broker: p.broker,
    version: p.version,
    now: p.broker.ctx.now,
    log: (r) => {
      p.log.request(r);
      metrics?.request(r.route, r.status);
    },
    onRefresh: metrics ? (o) => metrics.refresh(o) : undefined,
  });
  const metricsOnMain = Boolean(metrics && p.metrics && !p.metricsListen);
  const trustProxy = typeof p.trustProxy === 'function' ? p.trustProxy : () => Boolean(p.trustProxy);
  let tlsFiles = p.tls;

  // With TLS the listener is replaced on reload (SO_REUSEPORT lets old and new
  // overlap), which would also let a second `serve` share the port unnoticed; so
  // make sure nobody is listening there first.
  if (p.tls && p.port !== 0 && (await somethingListens(p.hostname, p.port))) {
    throw Object.assign(new Error('address in use'), { code: 'EADDRINUSE' });
  }

  const listen = (port: number, tls?: { cert: string; key: string }): Server<undefined> =>
    Bun.serve({
      hostname: p.hostname,
      port,
      reusePort: Boolean(p.tls),
      tls,
      // Bun rejects larger bodies before any of our code runs; forms are capped lower in readForm.
      maxRequestBodySize: MAX_FORM_BYTES * 4,
      idleTimeout: 30,
      fetch(req, srv) {
        if (metricsOnMain && new URL(req.url).pathname === '/metrics') return metrics!.render();
        return app(req, new PeerAddress(req, srv, trustProxy));
      },
      error(err) {
        p.log.warn('server.error', { error: (err as Error).name });
        return new Response(JSON.stringify({ error: 'internal', error_description: 'Internal error in the broker.' }), {
          status: 500,
          headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-reason': 'Internal error in the broker.' },
        });
      },
    });

  let server = listen(p.port, p.tls ? await readTls(p.tls) : undefined);
  const port = server.port ?? p.port;
  let metricsServer: Server<undefined> | undefined;
  if (metrics && p.metricsListen) {
    metricsServer = Bun.serve({
      hostname: p.metricsListen.hostname,
      port: p.metricsListen.port,
      fetch: (req) => (new URL(req.url).pathname === '/metrics' ? metrics.render() : new Response('Not found\n', { status: 404 })),
    });
  }
  const host = (h: string) => (h.includes(':') ? `[${h}]` : h);
  return {
    url: `${p.tls ? 'https' : 'http'}://${host(p.hostname)}:${port}`,
    metricsUrl: metricsServer
      ? `http://${host(p.metricsListen!.hostname)}:${metricsServer.port ?? p.metricsListen!.port}/metrics`
      : metricsOnMain
        ? `/metrics`
        : undefined,
    async reloadTls(paths) {
      if (!tlsFiles) return;
      const files = await readTls(paths ?? tlsFiles);
      if (paths) tlsFiles = paths;
      const next = listen(port, files);
      const old = server;
      server = next;
      await old.stop(false);
    },
    async stop() {
      await Promise.all([server.stop(false), metricsServer?.stop(false)]);
    },
  };
}

/** Reads both files now, so a bad file fails here with a clear message and not in a TLS handshake. */
async function readTls(f: TlsFiles): Promise<{ cert: string; key: string }> {
  const read = async (path: string, what: string) => {
    try {
      const text = await Bun.file(path).text();
      if (!text.includes('-----BEGIN')) throw new Error('not PEM');
      return text;
    } catch (e) {
      throw new BrokerError('config_invalid', `Cannot read the TLS ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`, {
        hint: `Check --tls-${what === 'certificate' ? 'cert' : 'key'} and the file's permissions (PEM format).`,
      });
    }
  };
  return { cert: await read(f.cert, 'certificate'), key: await read(f.key, 'key') };
}

function somethingListens(hostname: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: hostname === '0.0.0.0' || hostname === '::' ? '127.0.0.1' : hostname, port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}
