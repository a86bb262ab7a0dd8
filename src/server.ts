import type { Server } from 'bun';
import type { Broker } from './broker/broker.ts';
import { createApp } from './http/app.ts';
import { MAX_FORM_BYTES } from './http/request.ts';
import { textLogger } from './log.ts';

export interface RunningServer {
  url: string;
  server: Server<undefined>;
  /** Stops accepting, lets in-flight requests finish, then resolves. */
  stop(): Promise<void>;
}

/** The only place that binds a socket. */
export function startServer(p: {
  broker: Broker;
  hostname: string;
  port: number;
  version: string;
  log: ReturnType<typeof textLogger>;
}): RunningServer {
  const app = createApp({ broker: p.broker, version: p.version, log: p.log.request, now: p.broker.ctx.now });
  const server = Bun.serve({
    hostname: p.hostname,
    port: p.port,
    // Bun rejects larger bodies before any of our code runs; forms are capped lower in readForm.
    maxRequestBodySize: MAX_FORM_BYTES * 4,
    idleTimeout: 30,
    fetch(req, srv) {
      const address = srv.requestIP(req)?.address ?? 'unknown';
      return app(req, { address });
    },
    error(err) {
      p.log.warn('server.error', { error: (err as Error).name });
      return new Response(JSON.stringify({ error: 'internal', error_description: 'Internal error in the broker.' }), {
        status: 500,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-reason': 'Internal error in the broker.' },
      });
    },
  });
  const host = p.hostname.includes(':') ? `[${p.hostname}]` : p.hostname;
  return {
    url: `http://${host}:${server.port}`,
    server,
    stop: () => server.stop(false),
  };
}
