/**
 * Baselines served by a bare Bun.serve:
 *   - any path: a fixed JSON body shaped like a /refresh answer, with the same
 *     response headers (the cache-hit baseline);
 *   - POST /relay, when started with an upstream token URL: forwards the form
 *     body to it and returns its answer, i.e. the least any token proxy written
 *     on this runtime adds to a call to the provider (a diagnostic for the
 *     refresh benchmark).
 *
 *   bun bench/baseline-server.ts [upstream-token-url]   -> prints {"port":N} once listening
 */
const BODY = JSON.stringify({
  access_token: 'x'.repeat(64),
  expires: 3599,
  type: 'onedrivev2',
  token_type: 'Bearer',
  expires_at: new Date(Date.now() + 3600_000).toISOString(),
});

const upstream = process.argv[2];
if (upstream && new URL(upstream).hostname !== '127.0.0.1') throw new Error('the relay only forwards to 127.0.0.1');

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  idleTimeout: 30,
  async fetch(req) {
    if (upstream && req.method === 'POST' && new URL(req.url).pathname === '/relay') {
      const res = await fetch(upstream, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: await req.text(),
      });
      return new Response(await res.text(), {
        status: res.status,
        headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      });
    }
    return new Response(BODY, {
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', pragma: 'no-cache', vary: 'Accept' },
    });
  },
});

process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
const shutdown = () => {
  server.stop(true);
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
