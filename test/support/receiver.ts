/**
 * Local notification targets for tests: an HTTP receiver that records every
 * request (and answers 200, or 500 on `/fail`), a server that accepts and never
 * answers, and one that closes every socket at once. Loopback only.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

export function startReceiver(): Receiver {
  const received: Received[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      received.push({ path, headers: Object.fromEntries(req.headers), body: await req.text() });
      return new Response(path.startsWith('/fail') ? 'no' : 'ok', { status: path.startsWith('/fail') ? 500 : 200 });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, received, close: () => server.stop(true) };
}

/** `hang`: accepts and reads, never answers. `close`: ends each connection as soon as a request arrives. */
export async function startDeadTarget(mode: 'hang' | 'close'): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('data', () => {
      if (mode === 'close') s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
