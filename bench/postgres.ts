/**
 * `bun bench/run.ts --only postgres` (or `bun bench/postgres.ts`): the PostgreSQL
 * store's targets (issue 11), measured beside the SQLite store in the same run,
 * interleaved round by round, reported as medians of rounds:
 *
 *   P1  cache-hit requests/s, PostgreSQL ≥ 0.9× SQLite
 *   P2  a refresh calling the provider: PostgreSQL adds ≤ 3 ms over SQLite
 *   P3  1,000,000 connections in the database: cache hit and refresh within 1.25×
 *       of 10 connections, `serve` ready ≤ 1 s, RSS ≤ 200 MB
 *
 * A throw-away PostgreSQL cluster (test/support/postgres.ts, fsync off: its
 * durability is not what is measured) on loopback. The 1,000,000 rows are made by
 * the server itself (generate_series, pgcrypto's random bytes): keyids, 32-byte
 * check tags and 1.5 KB random envelopes shaped like real rows, no logins; the
 * connections driven by the measurements are real logins. Writes
 * bench/results/postgres.json. BENCH_PG_ROWS overrides the 1,000,000.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connectOverHttp } from '../test/support/binary.ts';
import { type Entra, startEntra } from '../test/support/entra.ts';
import { type Cluster, startCluster } from '../test/support/postgres.ts';
import { freePort, initArgs, machine, median, round, rssMiB, runJsonChild, serveReady, stopChild } from './lib.ts';
import type { LoadResult, LoadSpec } from './load.ts';
import { seedStore } from './seed.ts';

const ROOT = resolve(import.meta.dirname, '..');
const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = Math.max(1, Math.min(15, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 3 : 5))));
const LOAD_MS = QUICK ? 1000 : 2000;
const WARMUP_MS = QUICK ? 300 : 500;
const CONNECTIONS = 50;
const REFRESH_ITER = QUICK ? 10 : 20;
const MANY = Number(process.env.BENCH_PG_ROWS ?? 1_000_000);
const PASSCODE = 'bench passcode 0123456789';

const T0 = performance.now();
const log = (s: string) => process.stderr.write(`[bench-pg ${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}\n`);
const work = mkdtempSync(join(tmpdir(), 'broker-bench-pg-'));
const children = new Set<ChildProcess>();
let entra: Entra | undefined;
let cluster: Cluster | undefined;

interface Home {
  name: string;
  dir: string;
  port: number;
  url: string;
  log: string;
  env: Record<string, string>;
}

async function makeHome(binary: string, name: string, databaseUrl?: string): Promise<Home> {
  const dir = join(work, name, 'home');
  mkdirSync(join(work, name), { recursive: true });
  const port = await freePort();
  const secretFile = join(work, name, 'client-secret');
  writeFileSync(secretFile, `${entra!.clientSecret}\n`, { mode: 0o600 });
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', BROKER_HOME: dir };
  const args = [...initArgs(entra!, secretFile, port, PASSCODE), ...(databaseUrl ? ['--database-url', databaseUrl] : [])];
  const r = spawnSync(binary, args, { env, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`broker init (${name}) exited ${r.status}: ${r.stderr}`);
  return { name, dir, port, url: `http://127.0.0.1:${port}`, log: join(work, name, 'serve.log'), env };
}

function serve(binary: string, home: Home): Promise<{ child: ChildProcess; readyMs: number }> {
  return serveReady(binary, home, home.env, children);
}

async function login(home: Home): Promise<string> {
  return (await connectOverHttp(home.url, PASSCODE, (u, o) => entra!.login(u, o), { username: `bench-${randomBytes(4).toString('hex')}` })).authid;
}

async function getRefresh(url: string, authid: string): Promise<{ ms: number; status: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/refresh`, { headers: { 'x-authid': authid }, signal: AbortSignal.timeout(30_000) });
  await res.arrayBuffer();
  return { ms: performance.now() - t0, status: res.status };
}

function load(spec: Omit<LoadSpec, 'host'>): Promise<LoadResult> {
  return runJsonChild<LoadResult>(join(ROOT, 'bench', 'load.ts'), { host: '127.0.0.1', ...spec }, 40_000);
}

/** `count` rows made by the server: properly shaped, random, never opened by anyone. */
async function seedMany(url: string, count: number): Promise<number> {
  const { SQL } = await import('bun');
  const sql = new SQL(url, { max: 1 });
  const t0 = performance.now();
  try {
    await sql`CREATE EXTENSION IF NOT EXISTS pgcrypto`;
    const step = 100_000;
    for (let from = 0; from < count; from += step) {
      const to = Math.min(count, from + step) - 1;
      await sql`INSERT INTO connections (keyid, service, state, check_tag, sealed, version, created_at, state_changed_at, last_refresh_at)
        SELECT 'bk1' || translate(md5(i::text || ${work}), '0189', 'wxyz'), 'onedrivev2', 'active',
               gen_random_bytes(32), gen_random_bytes(1024) || gen_random_bytes(500), 1 + (i % 7),
               c, c, c + 3600000
        FROM generate_series(${from}::bigint, ${to}::bigint) AS i,
             LATERAL (SELECT (extract(epoch FROM now()) * 1000)::bigint - (random() * 80 * 86400000)::bigint AS c) AS t`;
      log(`seeded ${to + 1} rows`);
    }
    await sql`VACUUM ANALYZE connections`;
  } finally {
    await sql.close();
  }
  return performance.now() - t0;
}

type Side = 'sqlite' | 'pg' | 'pgMany';

async function main(): Promise<void> {
  const m = machine();
  log(`machine: ${m.cores} cores, ${m.cpuModel}, Bun ${m.bun}`);
  const dist = join(ROOT, 'dist', 'broker');
  const binary = join(work, 'broker');
  copyFileSync(process.env.BENCH_BINARY ?? dist, binary);
  cluster = await startCluster();
  entra = await startEntra({ acceptRedirectUri: (u) => /^http:\/\/127\.0\.0\.1:\d+\/logged-in$/.test(u) });
  const pgUrl = await cluster.createDatabase();
  const manyUrl = await cluster.createDatabase();
  const homes: Record<Side, Home> = {
    sqlite: await makeHome(binary, 'sqlite'),
    pg: await makeHome(binary, 'pg', pgUrl),
    pgMany: await makeHome(binary, 'pg-many', manyUrl),
  };
  // The schema first (one start), then the rows.
  await stopChild((await serve(binary, homes.pgMany)).child);
  const seedMs = await seedMany(manyUrl, MANY);
  log(`seeded ${MANY} rows in ${Math.round(seedMs)} ms`);
  await seedStore(join(homes.sqlite.dir, 'broker.db'), 5);

  // Start-up with the big database, a few times (the first start also warms the page cache).
  const ready: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const s = await serve(binary, homes.pgMany);
    if (r > 0) ready.push(s.readyMs);
    await stopChild(s.child);
  }
  log(`ready with ${MANY} rows: ${ready.map((v) => round(v, 1)).join(', ')} ms`);

  const servers = {} as Record<Side, { child: ChildProcess; readyMs: number }>;
  for (const side of ['sqlite', 'pg', 'pgMany'] as const) servers[side] = await serve(binary, homes[side]);
  const hit = {} as Record<Side, string[]>;
  const ref = {} as Record<Side, string>;
  for (const side of ['sqlite', 'pg', 'pgMany'] as const) {
    entra.setAccessTokenTtl(3600);
    hit[side] = [await login(homes[side]), await login(homes[side]), await login(homes[side])];
    entra.setAccessTokenTtl(30);
    ref[side] = await login(homes[side]);
  }
  for (const side of ['sqlite', 'pg', 'pgMany'] as const) for (const id of hit[side]) await getRefresh(homes[side].url, id);

  // P1 / P3a: cache hits, interleaved in rotating order.
  const sides = ['sqlite', 'pg', 'pgMany'] as const;
  const hits: Record<Side, LoadResult[]> = { sqlite: [], pg: [], pgMany: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(k + r) % sides.length]!;
      hits[side].push(
        await load({
          mode: 'closed',
          port: homes[side].port,
          path: '/refresh',
          connections: CONNECTIONS,
          warmupMs: WARMUP_MS,
          durationMs: LOAD_MS,
          headerSets: hit[side].map((id) => ({ 'X-AuthID': id })),
          hardTimeoutMs: 20_000,
        }),
      );
    }
    log(`cache-hit round ${r + 1}: ${sides.map((s) => `${s} ${hits[s].at(-1)!.rps}/s p50 ${hits[s].at(-1)!.latencyMs.p50} ms`).join('; ')}`);
  }

  // P2 / P3b: refreshes (30 s tokens: every request calls the provider), interleaved.
  entra.setAccessTokenTtl(30);
  for (const side of sides) for (let i = 0; i < 3; i++) await getRefresh(homes[side].url, ref[side]);
  const refreshes: Record<Side, number[]>[] = [];
  let refreshErrors = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const round_: Record<Side, number[]> = { sqlite: [], pg: [], pgMany: [] };
    for (let i = 0; i < REFRESH_ITER; i++) {
      for (let k = 0; k < sides.length; k++) {
        const side = sides[(k + i + r) % sides.length]!;
        const res = await getRefresh(homes[side].url, ref[side]);
        if (res.status !== 200) refreshErrors++;
        round_[side].push(res.ms);
      }
    }
    refreshes.push(round_);
    log(`refresh round ${r + 1}: ${sides.map((s) => `${s} ${round(median(round_[s]), 2)} ms`).join(', ')}`);
  }
  const mem = { sqlite: rssMiB(servers.sqlite.child.pid!), pg: rssMiB(servers.pg.child.pid!), pgMany: rssMiB(servers.pgMany.child.pid!) };
  const errors = sides.reduce((a, s) => a + hits[s].reduce((b, h) => b + h.errors, 0), 0);

  const rps = (s: Side) => median(hits[s].map((h) => h.rps));
  const p50 = (s: Side) => median(hits[s].map((h) => h.latencyMs.p50));
  const refMed = (s: Side) => median(refreshes.map((r) => median(r[s])));
  const rpsRatio = median(hits.pg.map((h, i) => h.rps / hits.sqlite[i]!.rps));
  const added = median(refreshes.map((r) => median(r.pg) - median(r.sqlite)));
  const hitLat = median(hits.pgMany.map((h, i) => h.latencyMs.p50 / hits.pg[i]!.latencyMs.p50));
  const refRatio = median(refreshes.map((r) => median(r.pgMany) / median(r.pg)));
  const readyMed = median(ready);
  const rows = [
    {
      id: 'P1',
      measurement: `cache hit, ${CONNECTIONS} conns: requests/s`,
      baseline: `${Math.round(rps('sqlite'))}/s SQLite`,
      subject: `${Math.round(rps('pg'))}/s PostgreSQL`,
      ratio: `${round(rpsRatio, 2)}×`,
      target: '≥ 0.9×',
      pass: rpsRatio >= 0.9 && errors === 0,
    },
    {
      id: 'P2',
      measurement: 'refresh calling the provider (median)',
      baseline: `${round(refMed('sqlite'), 2)} ms SQLite`,
      subject: `${round(refMed('pg'), 2)} ms PostgreSQL`,
      ratio: `+${round(added, 2)} ms`,
      target: 'added ≤ 3 ms',
      pass: added <= 3 && refreshErrors === 0,
    },
    {
      id: 'P3a',
      measurement: `${MANY.toLocaleString('en')} rows: cache-hit p50 latency`,
      baseline: `${round(p50('pg'), 2)} ms (10 conns)`,
      subject: `${round(p50('pgMany'), 2)} ms`,
      ratio: `${round(hitLat, 2)}×`,
      target: '≤ 1.25×',
      pass: hitLat <= 1.25,
    },
    {
      id: 'P3b',
      measurement: `${MANY.toLocaleString('en')} rows: refresh latency (median)`,
      baseline: `${round(refMed('pg'), 2)} ms (10 conns)`,
      subject: `${round(refMed('pgMany'), 2)} ms`,
      ratio: `${round(refRatio, 2)}×`,
      target: '≤ 1.25×',
      pass: refRatio <= 1.25,
    },
    {
      id: 'P3c',
      measurement: `${MANY.toLocaleString('en')} rows: \`serve\` ready (spawn → /healthz)`,
      baseline: '—',
      subject: `${round(readyMed, 1)} ms`,
      ratio: '—',
      target: '≤ 1000 ms',
      pass: readyMed <= 1000,
    },
    {
      id: 'P3d',
      measurement: `${MANY.toLocaleString('en')} rows: RSS after the load`,
      baseline: `${mem.pg.rss} MB (10 conns)`,
      subject: `${mem.pgMany.rss} MB (peak ${mem.pgMany.hwm})`,
      ratio: '—',
      target: '≤ 200 MB',
      pass: mem.pgMany.rss <= 200,
    },
  ];
  const head = ['#', 'measurement', 'baseline', 'subject', 'ratio', 'target', 'pass'];
  const table = [head, ...rows.map((r) => [r.id, r.measurement, r.baseline, r.subject, r.ratio, r.target, r.pass ? 'yes' : 'NO'])];
  const w = head.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}\n`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(ROOT, 'bench', 'results', 'postgres.json'),
    `${JSON.stringify({ machine: m, rounds: ROUNDS, rows, details: { ready, seedMs, mem, refreshErrors, hits, refreshes: refreshes.map((r) => ({ sqlite: median(r.sqlite), pg: median(r.pg), pgMany: median(r.pgMany) })) } }, null, 2)}\n`,
  );
  log(`rows written to bench/results/postgres.json; reuse detected at the provider: ${entra.stats().reuseDetected}`);
}

try {
  await main();
} finally {
  await Promise.all([...children].map((c) => stopChild(c).catch(() => {})));
  await entra?.close().catch(() => {});
  await cluster?.destroy().catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
