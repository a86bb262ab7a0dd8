/**
 * Runs the Entra ID fixture as its own process, for `npm run demo` and for
 * end-to-end tests that spawn the broker as a separate process.
 *
 *   npx bun test/support/entra-server.ts [--port 0] [--host 127.0.0.1]
 *       [--redirect-uri URI]... [--client-id GUID] [--client-secret S]
 *       [--tid GUID] [--access-token-ttl SECONDS]
 *
 * Prints exactly one JSON line to stdout once listening
 * (`{"authority","clientId","clientSecret","tenant"}`), then serves until
 * SIGTERM/SIGINT and exits 0. Without --redirect-uri, any loopback
 * `.../logged-in` callback is accepted, so a demo needs no coordination.
 */

import { parseArgs } from 'node:util';
import { startEntra } from './entra.ts';

const LOOPBACK_LOGGED_IN = /^http:\/\/(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?\/logged-in$/;

function numberOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) {
    process.stderr.write(`entra-server: --${name} must be a non-negative integer, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return parsed;
}

function parseCommandLine(): ReturnType<typeof parse> {
  try {
    return parse();
  } catch (error) {
    process.stderr.write(`entra-server: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
}

function parse() {
  return parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      tid: { type: 'string' },
      'access-token-ttl': { type: 'string' },
    },
    strict: true,
  });
}

const { values } = parseCommandLine();

const redirectUris = values['redirect-uri'] ?? [];

const entra = await startEntra({
  port: numberOption('port', values.port),
  host: values.host,
  redirectUris,
  acceptRedirectUri: redirectUris.length ? undefined : (uri) => LOOPBACK_LOGGED_IN.test(uri),
  clientId: values['client-id'],
  clientSecret: values['client-secret'],
  tid: values.tid,
  accessTokenTtl: numberOption('access-token-ttl', values['access-token-ttl']),
});

process.stdout.write(
  `${JSON.stringify({
    authority: entra.authority,
    clientId: entra.clientId,
    clientSecret: entra.clientSecret,
    tenant: entra.tenant,
  })}\n`,
);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await entra.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
