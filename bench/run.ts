/**
 * `npm run bench`: the broker's performance targets, measured against baselines
 * run in the same process of this suite, interleaved round by round, reported as
 * medians of rounds. Prints a table and writes bench/results/latest.json.
 *
 * Processes: this one (orchestrator + the local Entra-like provider, so that its
 * upstream calls can be counted), the compiled `dist/broker serve` (the subject;
 * two of them: a store of 10 connections and one of 100,000), a bare Bun.serve
 * (bench/baseline-server.ts), and a load generator per load run (bench/load.ts).
 * Everything listens on 127.0.0.1 only.
 *
 * Environment: BENCH_ROUNDS (default 5), BENCH_QUICK=1 (shorter windows, for
 * working on the suite itself), BENCH_KEEP=1 (keep the temp folder),
 * BENCH_STRICT=1 (exit 1 when a target is missed), BENCH_BINARY=path (measure
 * that broker binary instead of building and using dist/broker).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deriveSealKey, openJson, sealJson } from '../src/crypto/seal.ts';
import { generateAuthId } from '../src/crypto/authid.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { connectOverHttp } from '../test/support/binary.ts';
import { startEntra, type Entra } from '../test/support/entra.ts';
import { startDeadTarget } from '../test/support/receiver.ts';
import {
  cpuMs,
  firstLine,
  freePort,
  initArgs,
  machine,
  median,
  quantile,
  round,
  rssMiB,
  runJsonChild,
  serveReady,
  sleep,
  stopChild,
  timeProcess,
} from './lib.ts';
import type { LoadResult, LoadSpec } from './load.ts';
import { realisticGrant, seedStore } from './seed.ts';
import pkg from '../package.json' with { type: 'json' };

const USAGE = `usage: bun bench/run.ts [--only seal|notify|postgres]

Measures the compiled dist/broker against baselines (about a minute; builds it
first if it is older than src/), prints the table and writes
bench/results/latest.json. --only seal runs row 6 alone, in process, in seconds
(bench/results/seal.json); --only notify runs row 7 alone (bench/results/notify.json);
--only postgres runs the PostgreSQL rows beside SQLite ones measured in the same run
(bench/postgres.ts, about 90 s: it seeds 1,000,000 rows; bench/results/postgres.json).
Environment: BENCH_ROUNDS, BENCH_QUICK=1, BENCH_KEEP=1,
BENCH_STRICT=1, BENCH_BINARY=path (see the top of bench/run.ts).
`;
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const ONLY_SEAL = args.join(' ') === '--only seal';
const ONLY_NOTIFY = args.join(' ') === '--only notify';
if (args.join(' ') === '--only postgres') {
  await import('./postgres.ts');
  process.exit(0);
}
if (args.length && !ONLY_SEAL && !ONLY_NOTIFY) {
  process.stderr.write(USAGE);
  process.exit(2);
}

const ROOT = resolve(import.meta.dirname, '..');
const BENCH = join(ROOT, 'bench');
const QUICK = process.env.BENCH_QUICK === '1';
// The table reports medians of at least 5 rounds (BENCH_QUICK=1, for working on the suite itself, allows fewer).
const ROUNDS = Math.max(QUICK ? 1 : 5, Math.min(15, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 3 : 5))));
const LOAD_MS = QUICK ? 1000 : 2000;
const WARMUP_MS = QUICK ? 300 : 500;
const CONNECTIONS = 50;
const STORM = 500;
const BIG = 100_000;
const SMALL = 10;
const REFRESH_ITER = QUICK ? 10 : 25;
const CLI_RUNS = QUICK ? 10 : 25;
const PASSCODE = 'bench passcode 0123456789';
/** The whole suite must end well within 10 minutes; this is the hard stop. */
const DEADLINE_MS = 8 * 60_000;

const log = (s: string) => process.stderr.write(`[bench ${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}\n`);
const T0 = performance.now();
const children = new Set<ChildProcess>();
let entra: Entra | undefined;
const work = mkdtempSync(join(tmpdir(), 'broker-bench-'));

async function cleanup(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, 'SIGTERM', 3000).catch(() => {})));
  await entra?.close().catch(() => {});
  if (process.env.BENCH_KEEP !== '1') rmSync(work, { recursive: true, force: true });
  else log(`kept ${work}`);
}
const deadline = setTimeout(async () => {
  log(`hard deadline of ${DEADLINE_MS / 1000} s reached; stopping`);
  await cleanup();
  process.exit(1);
}, DEADLINE_MS);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------
// Results

interface Row {
  id: string;
  measurement: string;
  baseline: string;
  subject: string;
  ratio: string;
  target: string;
  pass: boolean | null;
  /** For a miss: by how much, in the row's own terms. */
  missBy?: string;
}

/**
 * Why a row misses its target when it does: what the per-step breakdown
 * (bench/breakdown.ts) and the profile (bench/profile.ts) show is left. Printed
 * under the table for each missed row only.
 */
const WHY: Record<string, string> = {
  '1a': 'requests/s is bounded by one JS thread, and on 2 shared cores by whatever else runs: a cache hit does what a bare Bun.serve does plus reading X-AuthID and Accept, a SHA-256 of the AuthID against its proof, the SQLite `PRAGMA data_version` for revokes (a read lock: two fcntl(2)) and the log line (bench/breakdown.ts); the ratio falls further when other processes take CPU, since the broker needs more of it per request.',
  '1b': 'p99 follows throughput on one JS thread (see 1a): with 50 connections queued, each request waits for the ones ahead of it.',
  '1c': 'the per-request AuthID proof (SHA-256), the store freshness check (`PRAGMA data_version`), the Accept check and the log line; bench/breakdown.ts itemises them.',
  '2': "SQLite's fsync of the rotated refresh token before answering (0.2 to 1 ms on this disk: strace -T of serve), which is what makes a rotation survive a power cut; the fsync's cost is the disk's.",
  '5a': 'the binary is ~110 MB of Bun runtime plus 7 MB of bundled bytecode: mapping and loading it costs more than a hello-world before any of our code runs.',
  '5b': "`list` also loads bun:sqlite and reads the store (about 1 ms: the module, SQLite's first open, the -wal/-shm files it makes for the read), looks at five files on Bun's thread pool and prints; the rest is the runtime's start-up (see 5a).",
  '7': 'single rounds vary by ±30% on a shared machine; delivery runs beside serving and no request waits for it (see bench/README.md, row 7).',
  '7b': 'single rounds vary by ±30% on a shared machine; delivery runs beside serving and no request waits for it (see bench/README.md, row 7).',
  '6': "the broker's record is JSON: stringify, decode and parse of 1.4 KB (about 1.6 µs) come on top of libsodium's own work, which src/crypto/heap.ts already calls without the wrappers' glue or an envelope copy.",
};
const rows: Row[] = [];
const details: Record<string, unknown> = {};

const ms = (x: number) => `${round(x, x < 10 ? 2 : 1)} ms`;
const x = (r: number) => `${round(r, 2)}×`;

// ---------------------------------------------------------------------------
// The binary

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

function ensureBinary(): string {
  if (process.env.BENCH_BINARY) {
    // Another build (e.g. of a proposed change, in a scratch copy) measured the same way.
    const copy = join(work, 'broker');
    copyFileSync(resolve(process.env.BENCH_BINARY), copy);
    return copy;
  }
  const dist = join(ROOT, 'dist', 'broker');
  const sources = Math.max(newestMtime(join(ROOT, 'src')), newestMtime(join(ROOT, 'bin')), statSync(join(ROOT, 'package.json')).mtimeMs);
  if (!existsSync(dist) || statSync(dist).mtimeMs < sources) {
    log('dist/broker is missing or older than src/: npm run build');
    const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], timeout: 180_000 });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
  // Run a private copy: others may rebuild dist/broker while the suite runs.
  const copy = join(work, 'broker');
  copyFileSync(dist, copy);
  return copy;
}

// ---------------------------------------------------------------------------
// Broker homes and servers

interface Home {
  name: string;
  dir: string;
  port: number;
  url: string;
  log: string;
}

async function makeHome(binary: string, name: string, extra: string[] = []): Promise<Home> {
  const dir = join(work, name, 'home');
  mkdirSync(join(work, name), { recursive: true });
  const port = await freePort();
  const secretFile = join(work, name, 'client-secret');
  writeFileSync(secretFile, `${entra!.clientSecret}\n`, { mode: 0o600 });
  const args = [...initArgs(entra!, secretFile, port, PASSCODE), ...extra];
  const r = spawnSync(binary, args, { env: brokerEnv(dir), encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`broker init (${name}) exited ${r.status}: ${r.stderr}`);
  return { name, dir, port, url: `http://127.0.0.1:${port}`, log: join(work, name, 'serve.log') };
}

function brokerEnv(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', BROKER_HOME: home };
}

interface Running {
  child: ChildProcess;
  readyMs: number;
}

function serve(binary: string, home: Home): Promise<Running> {
  return serveReady(binary, home, brokerEnv(home.dir), children);
}

async function login(home: Home): Promise<string> {
  const { authid } = await connectOverHttp(home.url, PASSCODE, (u, o) => entra!.login(u, o), { username: `bench-${randomBytes(4).toString('hex')}` });
  return authid;
}

async function getRefresh(url: string, authid: string): Promise<{ ms: number; status: number; token: string }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/refresh`, { headers: { 'x-authid': authid, accept: 'application/json' }, signal: AbortSignal.timeout(30_000) });
  const body = (await res.json()) as { access_token?: string };
  return { ms: performance.now() - t0, status: res.status, token: body.access_token ?? '' };
}

function load(spec: Omit<LoadSpec, 'host'>): Promise<LoadResult> {
  return runJsonChild<LoadResult>(join(BENCH, 'load.ts'), { host: '127.0.0.1', ...spec }, (spec.hardTimeoutMs ?? 30_000) + 10_000);
}

// ---------------------------------------------------------------------------
// A refresh token of our own, for the direct-to-provider baseline (PKCE login at the provider)

const SCOPE = 'offline_access Files.ReadWrite openid profile';

async function ownRefreshToken(redirectUri: string): Promise<{ current: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const url = new URL(entra!.authorizeUrl());
  url.search = new URLSearchParams({
    client_id: entra!.clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: SCOPE,
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  const callback = new URL(await entra!.login(url.href, { username: 'bench-direct' }));
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`direct login failed: ${callback.href}`);
  const res = await fetch(entra!.tokenUrl(), {
    signal: AbortSignal.timeout(30_000),
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      client_id: entra!.clientId,
      client_secret: entra!.clientSecret,
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      scope: SCOPE,
    }),
  });
  const body = (await res.json()) as { refresh_token?: string };
  if (!body.refresh_token) throw new Error(`direct code redemption failed: ${JSON.stringify(body)}`);
  return { current: body.refresh_token };
}

/** The same refresh_token grant the broker sends, straight to the provider (or through a bare relay); rotates our token. */
async function directRefresh(rt: { current: string }, via?: string): Promise<{ ms: number; status: number }> {
  const t0 = performance.now();
  const res = await fetch(via ?? entra!.tokenUrl(), {
    signal: AbortSignal.timeout(30_000),
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      client_id: entra!.clientId,
      client_secret: entra!.clientSecret,
      grant_type: 'refresh_token',
      refresh_token: rt.current,
      scope: SCOPE,
    }),
  });
  const body = (await res.json()) as { refresh_token?: string };
  const elapsed = performance.now() - t0;
  if (body.refresh_token) rt.current = body.refresh_token;
  return { ms: elapsed, status: res.status };
}

// ---------------------------------------------------------------------------

/** What the measurements share: the binary, both homes and their servers, the baseline, the logged-in connections. */
interface Suite {
  binary: string;
  sodium: Awaited<ReturnType<typeof loadSodium>>;
  entra: Entra;
  A: Home;
  B: Home;
  /** Spawn-to-ready times per home, from measureReady. */
  ready: Record<string, number[]>;
  srvA: Running;
  srvB: Running;
  baseline: ChildProcess;
  baselinePort: number;
  /** AuthIDs with 1 h tokens (cache hits), one with 30 s tokens per home (refreshes), one with a 2 s token (the storm). */
  hitA: string[];
  hitB: string[];
  refA: string;
  refB: string;
  stormA: string;
  stormIssued: number;
}

async function main(): Promise<void> {
  const m = machine();
  log(`machine: ${m.cores} cores, ${m.cpuModel}, Bun ${m.bun}, load average ${m.loadavgStart.join(' ')}`);
  const sodium = await loadSodium();
  if (ONLY_NOTIFY) {
    await measureNotify(ensureBinary());
    report(m);
    return;
  }
  if (!ONLY_SEAL) {
    const suite = await setUp(sodium);
    await measureStorm(suite);
    const hit = await measureCacheHit(suite);
    const refresh = await measureRefresh(suite);
    measureScale(suite, hit, refresh);
    await tearDown(suite);
    await measureCli(suite.binary, suite.A);
    await measureNotify(suite.binary);
  }
  measureSeal(sodium);
  report(m);
}

/** Homes A = 10 connections (5 real logins + 5 seeded) and B = 100,000 (4 real + 99,996 seeded); #4c's start-up times; both servers and the baseline running. */
async function setUp(sodium: Suite['sodium']): Promise<Suite> {
  const binary = ensureBinary();
  entra = await startEntra({ acceptRedirectUri: (u) => /^http:\/\/127\.0\.0\.1:\d+\/logged-in$/.test(u) });
  log(`provider at ${entra.authority}`);
  const A = await makeHome(binary, 'small');
  const B = await makeHome(binary, 'large');
  const seedA = await seedStore(join(A.dir, 'broker.db'), SMALL - 5, { sodium });
  const seedB = await seedStore(join(B.dir, 'broker.db'), BIG - 4, { sodium });
  log(`seeded ${seedB.count} connections in ${seedB.ms} ms (${seedB.perSecond}/s, envelopes of ${seedB.envelopeBytes} bytes)`);
  details.seed = { small: seedA, large: seedB, dbBytesLarge: statSync(join(B.dir, 'broker.db')).size };

  const ready = await measureReady(binary, A, B);
  const srvA = await serve(binary, A);
  const srvB = await serve(binary, B);

  // Real logins, each with the token lifetime its measurement needs.
  entra.setAccessTokenTtl(3600);
  const hitA = [await login(A), await login(A), await login(A)];
  const hitB = [await login(B), await login(B), await login(B)];
  entra.setAccessTokenTtl(30);
  const refA = await login(A);
  const refB = await login(B);
  entra.setAccessTokenTtl(2);
  const stormA = await login(A);
  const stormIssued = Date.now();
  entra.setAccessTokenTtl(3600);
  log('logged in 9 connections');

  const baseline = spawn(process.execPath, [join(BENCH, 'baseline-server.ts'), entra.tokenUrl()], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(baseline);
  const baselinePort = (JSON.parse(await firstLine(baseline, 15_000, 'baseline-server')) as { port: number }).port;
  return { binary, sodium, entra, A, B, ready, srvA, srvB, baseline, baselinePort, hitA, hitB, refA, refB, stormA, stormIssued };
}

async function tearDown(s: Suite): Promise<void> {
  await stopChild(s.srvA.child);
  await stopChild(s.srvB.child);
  await stopChild(s.baseline);
  await s.entra.close();
  entra = undefined;
}

/** #4c: spawn to ready, both stores interleaved. */
async function measureReady(binary: string, A: Home, B: Home): Promise<Record<string, number[]>> {
  const ready: Record<string, number[]> = { small: [], large: [] };
  // One unmeasured start each: the first read of a fresh 100 MB binary is a page-cache effect, not start-up.
  for (const h of [A, B]) await stopChild((await serve(binary, h)).child);
  for (let r = 0; r < ROUNDS; r++) {
    for (const h of r % 2 ? [B, A] : [A, B]) {
      const s = await serve(binary, h);
      ready[h.name]!.push(s.readyMs);
      await stopChild(s.child);
    }
  }
  log(`ready: small ${ready.small!.map((v) => round(v, 1)).join(', ')} ms; large ${ready.large!.map((v) => round(v, 1)).join(', ')} ms`);
  details.ready = ready;
  return ready;
}

/** #3: 500 concurrent /refresh for one connection whose (2 s) token has just expired; Microsoft then issues 1 h tokens. */
async function measureStorm({ entra, A, stormA, stormIssued }: Suite): Promise<void> {
  const waitFor = stormIssued + 2500 - Date.now();
  if (waitFor > 0) await sleep(waitFor);
  const before = entra.stats();
  const storm = await load({ mode: 'burst', port: A.port, path: '/refresh', connections: STORM, headerSets: [{ 'X-AuthID': stormA }], hardTimeoutMs: 30_000 });
  const after = entra.stats();
  const upstreamCalls = after.tokenRequests - before.tokenRequests;
  const tokens = new Set(storm.bodies!.map((b) => /"access_token":"([^"]+)"/.exec(b)?.[1] ?? `?${b.slice(0, 60)}`));
  const ok200 = storm.statuses['200'] ?? 0;
  rows.push({
    id: '3',
    measurement: `${STORM} concurrent /refresh, one expired token`,
    baseline: '—',
    subject: `${ok200}/${STORM} ok, ${upstreamCalls} upstream call${upstreamCalls === 1 ? '' : 's'}, ${tokens.size} token${tokens.size === 1 ? '' : 's'}`,
    ratio: '—',
    target: 'all ok, 1 call',
    pass: ok200 === STORM && upstreamCalls === 1 && tokens.size === 1,
  });
  details.storm = { ...storm, bodies: undefined, upstreamCalls, distinctTokens: tokens.size, lastMs: storm.latencyMs.max };
  log(`storm: ${ok200}/${STORM} ok, ${upstreamCalls} upstream calls, all answered within ${storm.latencyMs.max} ms`);
}

type Side = 'baseline' | 'small' | 'large';

/** #1 (and the data of #4a): cache hits on the baseline, the small and the large store, interleaved in rotating order. */
async function measureCacheHit(s: Suite): Promise<Record<Side, LoadResult[]>> {
  for (const [url, ids] of [
    [s.A.url, s.hitA],
    [s.B.url, s.hitB],
  ] as const) {
    for (const id of ids) {
      const r = await getRefresh(url, id);
      if (r.status !== 200) throw new Error(`warm-up /refresh answered ${r.status}`);
    }
  }
  const hit: Record<Side, LoadResult[]> = { baseline: [], small: [], large: [] };
  const subjects = [
    { name: 'baseline' as const, port: s.baselinePort, ids: [] as string[], pid: s.baseline.pid! },
    { name: 'small' as const, port: s.A.port, ids: s.hitA, pid: s.srvA.child.pid! },
    { name: 'large' as const, port: s.B.port, ids: s.hitB, pid: s.srvB.child.pid! },
  ];
  /** Server CPU time per request (all threads), a scheduler-independent cost next to requests/s. */
  const cpuPerReq: Record<Side, number[]> = { baseline: [], small: [], large: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < subjects.length; k++) {
      const sub = subjects[(k + r) % subjects.length]!;
      const cpu0 = cpuMs(sub.pid);
      const res = await load({
        mode: 'closed',
        port: sub.port,
        path: '/refresh',
        connections: CONNECTIONS,
        warmupMs: WARMUP_MS,
        durationMs: LOAD_MS,
        headerSets: sub.ids.map((id) => ({ 'X-AuthID': id })),
        hardTimeoutMs: 20_000,
      });
      hit[sub.name].push(res);
      cpuPerReq[sub.name].push(((cpuMs(sub.pid) - cpu0) * 1000) / res.totalRequests);
    }
    log(
      `cache-hit round ${r + 1}: ${subjects.map((sub) => `${sub.name} ${hit[sub.name].at(-1)!.rps}/s p99 ${hit[sub.name].at(-1)!.latencyMs.p99} ms ${round(cpuPerReq[sub.name].at(-1)!, 1)} µs CPU/req`).join('; ')}`,
    );
  }
  const errorsHit = [...hit.small, ...hit.large, ...hit.baseline].reduce((a, r) => a + r.errors, 0);
  const rpsRatio = median(hit.small.map((r, i) => r.rps / hit.baseline[i]!.rps));
  const p99Small = median(hit.small.map((r) => r.latencyMs.p99));
  const p99Base = median(hit.baseline.map((r) => r.latencyMs.p99));
  rows.push({
    id: '1a',
    measurement: `/refresh cache hit, ${CONNECTIONS} conns: requests/s`,
    baseline: `${Math.round(median(hit.baseline.map((r) => r.rps)))}/s`,
    subject: `${Math.round(median(hit.small.map((r) => r.rps)))}/s`,
    ratio: x(rpsRatio),
    target: '≥ 0.6×',
    pass: rpsRatio >= 0.6 && errorsHit === 0,
    missBy: `${x(rpsRatio / 0.6)} of the target (${round((0.6 - rpsRatio) * 100)} points short)`,
  });
  const cpuBase = median(cpuPerReq.baseline);
  const cpuSmall = median(cpuPerReq.small);
  rows.push({
    id: '1b',
    measurement: `/refresh cache hit, ${CONNECTIONS} conns: p99 latency`,
    baseline: ms(p99Base),
    subject: ms(p99Small),
    ratio: x(p99Small / p99Base),
    target: '≤ 2× bare',
    pass: p99Small / p99Base <= 2 && errorsHit === 0,
    missBy: `${x(p99Small / p99Base / 2)} over (${ms(p99Small - 2 * p99Base)} above 2× bare)`,
  });
  rows.push({
    id: '1c',
    measurement: '/refresh cache hit: server CPU time per request',
    baseline: `${round(cpuBase, 1)} µs`,
    subject: `${round(cpuSmall, 1)} µs`,
    ratio: x(cpuSmall / cpuBase),
    target: '≤ 2× bare',
    pass: cpuSmall / cpuBase <= 2,
    missBy: `${round(cpuSmall - 2 * cpuBase, 1)} µs per request above 2× bare (${x(cpuSmall / cpuBase / 2)})`,
  });
  details.cacheHit = hit;
  details.cpuMicrosPerRequest = cpuPerReq;
  return hit;
}

type RefreshRound = { direct: number[]; relay: number[]; small: number[]; large: number[] };

/** #2 (and the data of #4b): direct to the provider, through a bare relay, and through each broker, interleaved. */
async function measureRefresh(s: Suite): Promise<RefreshRound[]> {
  const { entra, A, B, refA, refB } = s;
  entra.setAccessTokenTtl(30);
  const rt = await ownRefreshToken(`${A.url}/logged-in`);
  for (const [url, id] of [
    [A.url, refA],
    [B.url, refB],
  ] as const) {
    for (let i = 0; i < 3; i++) {
      const r = await getRefresh(url, id);
      if (r.status !== 200) throw new Error(`warm-up refresh answered ${r.status}`);
    }
  }
  for (let i = 0; i < 3; i++) await directRefresh(rt);
  const relayUrl = `http://127.0.0.1:${s.baselinePort}/relay`;
  for (let i = 0; i < 3; i++) await directRefresh(rt, relayUrl);
  const refreshRounds: RefreshRound[] = [];
  const s0 = entra.stats();
  let refreshErrors = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const round_: RefreshRound = { direct: [], relay: [], small: [], large: [] };
    for (let i = 0; i < REFRESH_ITER; i++) {
      const order = (['direct', 'relay', 'small', 'large'] as const).map((_, k, a) => a[(k + i + r) % 4]!);
      for (const which of order) {
        const res =
          which === 'direct'
            ? await directRefresh(rt)
            : which === 'relay'
              ? await directRefresh(rt, relayUrl)
              : await getRefresh(which === 'small' ? A.url : B.url, which === 'small' ? refA : refB);
        if (res.status !== 200) refreshErrors++;
        round_[which].push(res.ms);
      }
    }
    refreshRounds.push(round_);
    log(
      `refresh round ${r + 1}: direct ${round(median(round_.direct), 2)} ms, relay ${round(median(round_.relay), 2)} ms, small ${round(median(round_.small), 2)} ms, large ${round(median(round_.large), 2)} ms`,
    );
  }
  const s1 = entra.stats();
  // Strict reuse detection in the provider: a broker that ever reused a rotated refresh token would show here.
  details.reuseDetected = s1.reuseDetected;
  const upstreamDuring = s1.byGrant.refresh_token - s0.byGrant.refresh_token;
  const expectedUpstream = ROUNDS * REFRESH_ITER * 4;
  const added = median(refreshRounds.map((r) => median(r.small) - median(r.direct)));
  const oursAdded = median(refreshRounds.map((r) => median(r.small) - median(r.relay)));
  const addedLarge = median(refreshRounds.map((r) => median(r.large) - median(r.direct)));
  const directMed = median(refreshRounds.map((r) => median(r.direct)));
  const smallMed = median(refreshRounds.map((r) => median(r.small)));
  rows.push({
    id: '2b',
    measurement: '… the same against a direct call to the provider',
    baseline: `${ms(directMed)} direct`,
    subject: `${ms(smallMed)} (+${ms(added)})`,
    ratio: x(smallMed / directMed),
    target: '—',
    pass: refreshErrors === 0 && upstreamDuring === expectedUpstream ? null : false,
  });
  const relayAdded = median(refreshRounds.map((r) => median(r.relay) - median(r.direct)));
  const relayMed = median(refreshRounds.map((r) => median(r.relay)));
  rows.push({
    id: '2',
    measurement: '/refresh calling the provider: latency added beyond a bare Bun relay (median)',
    baseline: `${ms(relayMed)} relay (+${ms(relayAdded)})`,
    subject: `+${ms(oursAdded)} beyond relay`,
    ratio: x(smallMed / relayMed),
    target: '≤ +1 ms',
    pass: oursAdded <= 1 && refreshErrors === 0 && upstreamDuring === expectedUpstream,
    missBy: `${ms(oursAdded - 1)} over`,
  });
  details.refresh = {
    rounds: refreshRounds.map((r) => ({ direct: median(r.direct), relay: median(r.relay), small: median(r.small), large: median(r.large) })),
    relayAddedMs: relayAdded,
    brokerBeyondRelayMs: oursAdded,
    addedSmallMs: added,
    addedLargeMs: addedLarge,
    upstreamDuring,
    expectedUpstream,
    refreshErrors,
  };
  return refreshRounds;
}

/** #4: the 100,000-connection store against the 10-connection one, from the rounds above, plus memory. */
function measureScale(s: Suite, hit: Record<Side, LoadResult[]>, refreshRounds: RefreshRound[]): void {
  const hitLatRatio = median(hit.large.map((r, i) => r.latencyMs.p50 / hit.small[i]!.latencyMs.p50));
  const hitRpsRatio = median(hit.large.map((r, i) => r.rps / hit.small[i]!.rps));
  rows.push({
    id: '4a',
    measurement: `100k store: cache-hit p50 latency, ${CONNECTIONS} conns`,
    baseline: `${ms(median(hit.small.map((r) => r.latencyMs.p50)))} (10 conns)`,
    subject: ms(median(hit.large.map((r) => r.latencyMs.p50))),
    ratio: `${x(hitLatRatio)} (req/s ${x(hitRpsRatio)})`,
    target: '≤ 1.25×',
    pass: hitLatRatio <= 1.25,
  });
  const smallMed = median(refreshRounds.map((r) => median(r.small)));
  const addedLarge = median(refreshRounds.map((r) => median(r.large) - median(r.direct)));
  const refRatio = median(refreshRounds.map((r) => median(r.large) / median(r.small)));
  rows.push({
    id: '4b',
    measurement: '100k store: refresh latency (median)',
    baseline: `${ms(smallMed)} (10 conns)`,
    subject: `${ms(median(refreshRounds.map((r) => median(r.large))))} (+${ms(addedLarge)})`,
    ratio: x(refRatio),
    target: '≤ 1.25×',
    pass: refRatio <= 1.25,
  });
  const readySmall = median(s.ready.small!);
  const readyLarge = median(s.ready.large!);
  rows.push({
    id: '4c',
    measurement: '100k store: `serve` ready (spawn → /healthz)',
    baseline: `${ms(readySmall)} (10 conns)`,
    subject: ms(readyLarge),
    ratio: x(readyLarge / readySmall),
    target: '≤ 300 ms',
    pass: readyLarge <= 300,
  });
  const memA = rssMiB(s.srvA.child.pid!);
  const memB = rssMiB(s.srvB.child.pid!);
  rows.push({
    id: '4d',
    measurement: '100k store: RSS after the load',
    baseline: `${memA.rss} MB (10 conns)`,
    subject: `${memB.rss} MB (peak ${memB.hwm}; anon ${memB.anon})`,
    ratio: x(memB.rss / memA.rss),
    target: '≤ 150 MB',
    pass: memB.rss <= 150,
  });
  details.memoryMiB = { small: memA, large: memB };
}

/** #5: CLI start-up against a compiled hello-world, interleaved. */
async function measureCli(binary: string, A: Home): Promise<void> {
  const helloDir = join(work, 'hello');
  mkdirSync(helloDir);
  writeFileSync(join(helloDir, 'hello.ts'), "console.log('hello');\n");
  const hb = spawnSync(
    process.execPath,
    ['build', '--compile', '--bytecode', '--format=esm', '--minify', join(helloDir, 'hello.ts'), '--outfile', join(helloDir, 'hello')],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (hb.status !== 0) throw new Error(`hello-world build failed: ${hb.stderr}`);
  const cli = { hello: [] as number[], version: [] as number[], list: [] as number[], help: [] as number[] };
  const envA = brokerEnv(A.dir);
  let cliErrors = 0;
  for (let i = 0; i < 3; i++) for (const c of [[join(helloDir, 'hello')], [binary, '--version'], [binary, 'list'], [binary, '--help']]) timeProcess(c, envA);
  for (let i = 0; i < CLI_RUNS; i++) {
    const runs = [
      ['hello', [join(helloDir, 'hello')]],
      ['version', [binary, '--version']],
      ['list', [binary, 'list']],
      ['help', [binary, '--help']],
    ] as const;
    for (let k = 0; k < runs.length; k++) {
      const [name, cmd] = runs[(k + i) % runs.length]!;
      const t = timeProcess([...cmd], envA);
      if (t.code !== 0) cliErrors++;
      // One line per connection (the keyid first), besides the apps line and the table's head.
      if (name === 'list' && t.stdout.split('\n').filter((l) => l.startsWith('bk1')).length !== SMALL) cliErrors++;
      cli[name].push(t.ms);
    }
  }
  const helloMed = median(cli.hello);
  const versionMed = median(cli.version);
  const listMed = median(cli.list);
  const helpMed = median(cli.help);
  rows.push({
    id: '5a',
    measurement: `\`broker --version\` (${CLI_RUNS} runs)`,
    baseline: `${ms(helloMed)} hello-world`,
    subject: ms(versionMed),
    ratio: x(versionMed / helloMed),
    target: '≤ 1.5× hello',
    pass: versionMed / helloMed <= 1.5 && cliErrors === 0,
    missBy: cliErrors ? `${cliErrors} runs failed or printed the wrong rows` : `${ms(versionMed - 1.5 * helloMed)} above 1.5× hello-world`,
  });
  rows.push({
    id: '5b',
    measurement: `\`broker list\`, 10 connections (${CLI_RUNS} runs)`,
    baseline: `${ms(helloMed)} hello-world`,
    subject: ms(listMed),
    ratio: x(listMed / helloMed),
    target: '≤ 2× hello',
    pass: listMed / helloMed <= 2 && cliErrors === 0,
    missBy: cliErrors ? `${cliErrors} runs failed or printed the wrong rows` : `${ms(listMed - 2 * helloMed)} above 2× hello-world`,
  });
  // No target: the help needs commander, whose module alone loads node:fs, node:path and node:child_process.
  rows.push({
    id: '5c',
    measurement: `\`broker --help\` (${CLI_RUNS} runs)`,
    baseline: `${ms(helloMed)} hello-world`,
    subject: ms(helpMed),
    ratio: x(helpMed / helloMed),
    target: '—',
    pass: null,
  });
  details.cli = {
    medians: { hello: helloMed, version: versionMed, list: listMed, help: helpMed },
    p90: { hello: quantile(cli.hello, 0.9), version: quantile(cli.version, 0.9), list: quantile(cli.list, 0.9), help: quantile(cli.help, 0.9) },
    samples: cli,
  };
}

/**
 * #7: cache hits on a broker whose notification targets are dead (one accepts and
 * never answers, one closes every connection), against one without targets, in
 * the same run, interleaved. With --notify-all, each login before the load queues
 * a connection.created that hangs on the one target and fails fast on the other,
 * so deliveries time out and retry while the load runs.
 */
async function measureNotify(binary: string): Promise<void> {
  const ownProvider = !entra;
  entra ??= await startEntra({ acceptRedirectUri: (u) => /^http:\/\/127\.0\.0\.1:\d+\/logged-in$/.test(u) });
  entra.setAccessTokenTtl(3600);
  const hang = await startDeadTarget('hang');
  const closing = await startDeadTarget('close');
  const none = await makeHome(binary, 'notify-none');
  const dead = await makeHome(binary, 'notify-dead', ['--notify-url', hang.url, '--notify-url', closing.url, '--notify-all']);
  const srvNone = await serve(binary, none);
  const srvDead = await serve(binary, dead);
  try {
    const LOGINS = 10;
    const ids: Record<'none' | 'dead', string[]> = { none: [], dead: [] };
    for (let i = 0; i < LOGINS; i++) {
      ids.none.push(await login(none));
      ids.dead.push(await login(dead));
    }
    for (const [url, list] of [
      [none.url, ids.none],
      [dead.url, ids.dead],
    ] as const) {
      for (const id of list) if ((await getRefresh(url, id)).status !== 200) throw new Error('warm-up /refresh failed');
    }
    const rps: Record<'none' | 'dead', number[]> = { none: [], dead: [] };
    /** Server CPU time per request: steadier than requests/s on a shared machine. */
    const cpu: Record<'none' | 'dead', number[]> = { none: [], dead: [] };
    let errors = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 ? (['dead', 'none'] as const) : (['none', 'dead'] as const)) {
        const pid = (side === 'none' ? srvNone : srvDead).child.pid!;
        const cpu0 = cpuMs(pid);
        const res = await load({
          mode: 'closed',
          port: side === 'none' ? none.port : dead.port,
          path: '/refresh',
          connections: CONNECTIONS,
          warmupMs: WARMUP_MS,
          durationMs: LOAD_MS,
          headerSets: ids[side].map((id) => ({ 'X-AuthID': id })),
          hardTimeoutMs: 20_000,
        });
        rps[side].push(res.rps);
        cpu[side].push(((cpuMs(pid) - cpu0) * 1000) / res.totalRequests);
        errors += res.errors;
      }
      log(
        `notify round ${r + 1}: none ${rps.none.at(-1)}/s ${round(cpu.none.at(-1)!, 1)} µs CPU/req; dead targets ${rps.dead.at(-1)}/s ${round(cpu.dead.at(-1)!, 1)} µs CPU/req`,
      );
    }
    const deadLog = readFileSync(dead.log, 'utf8');
    const retries = (deadLog.match(/notify\.retry/g) ?? []).length;
    const ratio = median(rps.dead.map((v, i) => v / rps.none[i]!));
    rows.push({
      id: '7',
      measurement: `/refresh cache hit, ${CONNECTIONS} conns, 2 dead notify targets (${retries} failed deliveries meanwhile)`,
      baseline: `${Math.round(median(rps.none))}/s no targets`,
      subject: `${Math.round(median(rps.dead))}/s`,
      ratio: x(ratio),
      target: '≥ 0.95×',
      pass: ratio >= 0.95 && errors === 0 && retries > 0,
      missBy: `${x(ratio)} vs ≥ 0.95× (${errors} errors, ${retries} failed deliveries)`,
    });
    const cpuRatio = median(cpu.dead.map((v, i) => v / cpu.none[i]!));
    rows.push({
      id: '7b',
      measurement: '… server CPU time per request (the steadier figure)',
      baseline: `${round(median(cpu.none), 1)} µs`,
      subject: `${round(median(cpu.dead), 1)} µs`,
      ratio: x(cpuRatio),
      target: '≤ 1.05×',
      pass: cpuRatio <= 1.05,
      missBy: `${x(cpuRatio)} vs ≤ 1.05×`,
    });
    details.notify = { rps, cpuMicrosPerRequest: cpu, retries, errors };
  } finally {
    await stopChild(srvNone.child);
    await stopChild(srvDead.child);
    await hang.close();
    await closing.close();
    if (ownProvider) {
      await entra.close();
      entra = undefined;
    }
  }
}

/**
 * #6: seal + open of one realistic record, in process, as the broker does it
 * (derive the seal key with keyed BLAKE2b, JSON, version byte and nonce, secretbox,
 * then the same backwards), against libsodium's own work on the same bytes: one
 * keyed BLAKE2b of the same domain message, crypto_secretbox_easy and
 * crypto_secretbox_open_easy of the record's JSON bytes. Interleaved slice by slice
 * within each round.
 */
function measureSeal(sodium: Suite['sodium']): void {
  const { parsed } = generateAuthId((n) => sodium.randombytes_buf(n));
  const grant = realisticGrant(Date.now());
  const plain = new TextEncoder().encode(JSON.stringify(grant));
  const recordBytes = plain.length;
  const domain = new TextEncoder().encode(`broker/v1/seal\0${parsed.keyid}`);
  const subject = () => {
    const key = deriveSealKey(sodium, parsed);
    openJson(sodium, key, sealJson(sodium, key, grant));
  };
  const raw = () => {
    const key = sodium.crypto_generichash(32, domain, parsed.secret);
    const nonce = crypto.getRandomValues(new Uint8Array(sodium.crypto_secretbox_NONCEBYTES));
    sodium.crypto_secretbox_open_easy(sodium.crypto_secretbox_easy(plain, nonce, key), nonce, key);
  };
  // Other processes on a shared machine change its load within a second, so 700 ms
  // of one side and then 700 ms of the other measured the load as much as the code.
  // Slices of 100 calls (a few ms), alternated ABAB/BABA, give both sides the same load.
  const SLICE = 100;
  const sliceMs = (fn: () => void): number => {
    const t0 = performance.now();
    for (let j = 0; j < SLICE; j++) fn();
    return performance.now() - t0;
  };
  const roundRates = (): [subject: number, raw: number] => {
    let subjectMs = 0;
    let rawMs = 0;
    let slices = 0;
    const perSide = QUICK ? 300 : 700;
    while ((subjectMs < perSide || rawMs < perSide) && slices < 5000) {
      if (slices % 2) {
        rawMs += sliceMs(raw);
        subjectMs += sliceMs(subject);
      } else {
        subjectMs += sliceMs(subject);
        rawMs += sliceMs(raw);
      }
      slices++;
    }
    return [(slices * SLICE * 1000) / subjectMs, (slices * SLICE * 1000) / rawMs];
  };
  for (let i = 0; i < 2000; i++) {
    subject();
    raw();
  }
  const perSecond: number[] = [];
  const rawPerSecond: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const [s, b] = roundRates();
    perSecond.push(s);
    rawPerSecond.push(b);
  }
  const sealMed = median(perSecond);
  const rawMed = median(rawPerSecond);
  const ratio = median(perSecond.map((v, i) => v / rawPerSecond[i]!));
  rows.push({
    id: '6',
    measurement: `seal + open of one ${(recordBytes / 1024).toFixed(1)} KB record (with key derivation)`,
    baseline: `${Math.round(rawMed)}/s raw libsodium`,
    subject: `${Math.round(sealMed)}/s`,
    ratio: x(ratio),
    target: '≥ 0.8× raw',
    pass: ratio >= 0.8,
    missBy: `${x(ratio / 0.8)} of the target`,
  });
  details.seal = { recordBytes, perSecond: perSecond.map(Math.round), rawPerSecond: rawPerSecond.map(Math.round) };
}

function report(m: ReturnType<typeof machine>): void {
  m.loadavgEnd = loadavg().map((v) => round(v, 2));
  rows.sort((p, q) => p.id.localeCompare(q.id, 'en', { numeric: true }));
  const table = formatTable(rows);
  process.stdout.write(`\nbroker ${pkg.version} on ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Bun ${m.bun}, Linux ${m.kernel}\n`);
  process.stdout.write(`load average at start ${m.loadavgStart.join(' ')}, at end ${m.loadavgEnd.join(' ')}; medians of ${ROUNDS} interleaved rounds\n\n`);
  process.stdout.write(`${table}\n`);
  const missed = rows.filter((r) => r.pass === false);
  if (missed.length) process.stdout.write('\nmissed targets:\n');
  for (const r of missed) process.stdout.write(`- ${r.id}: ${r.missBy ?? 'see the row'}; why: ${WHY[r.id] ?? 'see bench/README.md'}\n`);
  const resultsDir = join(BENCH, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const out = { date: new Date().toISOString(), machine: m, rounds: ROUNDS, quick: QUICK, durationS: round((performance.now() - T0) / 1000, 1), rows, details };
  const name = ONLY_SEAL ? 'seal' : ONLY_NOTIFY ? 'notify' : 'latest';
  writeFileSync(join(resultsDir, `${name}.json`), `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`\nwrote bench/results/${name}.json (${out.durationS} s)\n`);
}

function formatTable(rs: Row[]): string {
  const head = ['#', 'measurement', 'baseline', 'subject', 'ratio', 'target', 'result'];
  const body = rs.map((r) => [r.id, r.measurement, r.baseline, r.subject, r.ratio, r.target, r.pass === null ? 'info' : r.pass ? 'PASS' : 'FAIL']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

try {
  await main();
  clearTimeout(deadline);
  await cleanup();
  // A missed target is a result, not a crash; BENCH_STRICT=1 turns it into exit status 1.
  process.exit(process.env.BENCH_STRICT === '1' && rows.some((r) => r.pass === false) ? 1 : 0);
} catch (e) {
  log(`failed: ${(e as Error).stack ?? e}`);
  clearTimeout(deadline);
  await cleanup();
  process.exit(2);
}
