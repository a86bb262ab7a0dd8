/**
 * Where a /refresh cache hit spends its time, step by step, in process (no
 * socket, no scheduler noise from a second process): the real Store, sodium,
 * TokenService and HTTP app function, each step timed alone over many
 * iterations, medians of rounds.
 *
 *   bun bench/breakdown.ts            # prints a table; run with 2>/dev/null to drop the log lines
 *
 * Compare the sum with the server CPU time per request that `npm run bench`
 * reports (row 1c): the rest is Bun.serve and the HTTP parsing the bare
 * baseline pays too.
 */
import type { Database } from 'bun:sqlite';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '../src/broker/broker.ts';
import { silentLogger } from '../src/broker/context.ts';
import { formatAuthId, parseAuthId } from '../src/crypto/authid.ts';
import { safeEqual } from '../src/crypto/compare.ts';
import { checkTagMatches, deriveKeys, openJson, sealJson } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { createApp } from '../src/http/app.ts';
import { makeLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { SqliteStore } from '../src/store/store.ts';
import { median, round } from './lib.ts';
import { realisticGrant } from './seed.ts';

const ROUNDS = 5;
const N = 20_000;
const dir = mkdtempSync(join(tmpdir(), 'broker-breakdown-'));
const sodium = await loadSodium();
const store = SqliteStore.open(join(dir, 'broker.db'));

// One connection with a valid token, inserted as a login would.
const keyidBytes = sodium.randombytes_buf(20);
const secret = sodium.randombytes_buf(35);
const authid = formatAuthId(keyidBytes, secret);
const id = parseAuthId(authid);
const keys = deriveKeys(sodium, id);
const now = Date.now();
await store.insert({ keyid: id.keyid, service: 'onedrivev2', checkTag: keys.checkTag, sealed: sealJson(sodium, keys.sealKey, realisticGrant(now)), now });

const broker = new Broker({
  config: {
    clientId: '00000000-0000-0000-0000-000000000000',
    clientSecret: 'x',
    tenant: 'consumers',
    authority: 'http://127.0.0.1:9',
    publicUrl: 'http://127.0.0.1:8080',
    passcodeHash: 'x',
    allowedOrigins: [],
  },
  store,
  sodium,
  fetch: () => Promise.reject(new Error('no network in the breakdown')),
  now: Date.now,
  log: silentLogger,
});
await broker.tokens.getAccessToken(authid); // fills the cache
await broker.tokens.getAccessToken(authid); // and proves this text: the next ones are cache hits
const record = (await store.get(id.keyid))!;

const logToStderr = makeLogger('text', (l) => process.stderr.write(`${l}\n`));
const logNowhere = makeLogger('text', () => {});
const appNoLog = createApp({ broker, version: 'bench' });
const appLogNowhere = createApp({ broker, version: 'bench', log: (r) => logNowhere.request(r) });
const req = () => new Request('http://127.0.0.1:8080/refresh', { headers: { 'x-authid': authid, accept: 'application/json' } });
const entry = { method: 'GET', route: '/refresh', status: 200, ms: 0.05, keyid: id.keyid.slice(0, 11) };

const metrics = new Metrics(store);
const appAsServe = createApp({
  broker,
  version: 'bench',
  log: (r) => {
    logToStderr.request(r);
    metrics.request(r.route, r.status);
  },
  onRefresh: (o) => metrics.refresh(o),
});
const dataVersion = (store as unknown as { db: Database }).db.query('PRAGMA data_version');

/** The steps of one cache hit in the order a request takes them (issue 15's parse, authenticate, store, cache, response, log, metrics). */
type Step = [name: string, fn: () => unknown, async?: boolean];
const feed = store.changes;
const proof = Bun.SHA256.hash(authid) as Uint8Array;
const steps: Step[] = [
  // The usual request (GET, X-AuthID, token in memory): TokenService.cachedToken, nothing awaited.
  ['parse: length, ":" and the keyid (cache hit)', () => authid.length === 92 && authid.charCodeAt(35) === 58 && authid.slice(0, 35)],
  ['authenticate: SHA-256 of the text vs its proof (cache hit)', () => safeEqual(Bun.SHA256.hash(authid) as Uint8Array, proof)],
  ['store: feed.sync, PRAGMA data_version (cache hit: the instant-revoke check)', () => feed.sync()],
  ['cache: TokenService.cachedToken (all of a cache hit)', () => broker.tokens.cachedToken(authid)],
  // The full check: a text's first request, and anything unusual (a wrong secret, a changed row).
  ['parse: parseAuthId (full check)', () => parseAuthId(authid)],
  ['authenticate: check tag, 1x keyed BLAKE2b in wasm (full check)', () => deriveKeys(sodium, id).checkTag],
  ['authenticate: checkTagMatches, constant time (full check)', () => checkTagMatches(sodium, keys.checkTag, record.checkTag)],
  ['store: getHead, the row read (full check, after a commit)', () => store.getHead(id.keyid), true],
  ['store: PRAGMA data_version alone', () => dataVersion.get()],
  ['cache: TokenService.getAccessToken (the full check + cache)', () => broker.tokens.getAccessToken(authid), true],
  ['http: new Request (what Bun.serve hands us)', () => req()],
  ['response: token JSON + new Response', () => tokenResponse()],
  ['log: request line, format only', () => logNowhere.request(entry)],
  ['log: request line, format + write(2) each', () => logToStderr.request(entry)],
  [
    'metrics: request + refresh counters',
    () => {
      metrics.request('/refresh', 200);
      metrics.refresh('cache_hit');
    },
  ],
  ['app(): /refresh, no log', async () => (await appNoLog(req(), { address: '127.0.0.1' })).text(), true],
  ['app(): /refresh, log formatted, not written', async () => (await appLogNowhere(req(), { address: '127.0.0.1' })).text(), true],
  ['app(): /refresh, log + metrics (as serve --metrics)', async () => (await appAsServe(req(), { address: '127.0.0.1' })).text(), true],
  ['reference: openJson of the sealed grant', () => openJson(sodium, keys.sealKey, record.sealed!)],
  ['reference: nonce randomBytes(16) (pages only)', () => randomBytes(16).toString('base64')],
];

/** What routes/refresh.ts builds for a cache hit: the JSON around `expires` made once per token, and the same header set. */
const TOKEN_JSON_HEADERS = { 'cache-control': 'no-store', pragma: 'no-cache', vary: 'Accept', 'content-type': 'application/json; charset=utf-8' };
const tokenExpires = Date.now() + 3_600_000;
const [bodyHead, bodyTail] = [
  `{"access_token":${JSON.stringify('x'.repeat(1400))},"expires":`,
  `,"type":"onedrivev2","token_type":"Bearer","expires_at":"${new Date(tokenExpires).toISOString()}"}`,
];
function tokenResponse(): Response {
  return new Response(`${bodyHead}${Math.floor((tokenExpires - Date.now()) / 1000)}${bodyTail}`, { status: 200, headers: TOKEN_JSON_HEADERS });
}

const results: { name: string; us: number }[] = [];
for (const [name, fn, isAsync] of steps) {
  const per: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const t0 = performance.now();
    if (isAsync) for (let i = 0; i < N; i++) await fn();
    else for (let i = 0; i < N; i++) fn();
    if (r > 0) per.push(((performance.now() - t0) * 1000) / N); // round 0 warms up the JIT
  }
  results.push({ name, us: median(per) });
}

const width = Math.max(...results.map((r) => r.name.length));
process.stdout.write(`cache-hit path, µs per call (median of ${ROUNDS} rounds of ${N}), Bun ${Bun.version}\n`);
for (const r of results) process.stdout.write(`  ${r.name.padEnd(width)}  ${String(round(r.us, 2)).padStart(7)} µs\n`);
await store.close();
rmSync(dir, { recursive: true, force: true });
