/**
 * Profiles the compiled broker (dist/broker, with BUN_OPTIONS="--cpu-prof …";
 * its embedded source map names our files and lines) in the situation of one
 * benchmark, and prints where the time goes:
 *
 *   bun bench/profile.ts cache     # /refresh cache hits, 50 connections, load from bench/load.ts
 *   bun bench/profile.ts refresh   # sequential /refresh calls that each call the provider
 *   bun bench/profile.ts version   # `broker --version` start-up
 *   bun bench/profile.ts seal      # seal + open of one record, in process
 *   bun bench/profile.ts syscalls  # system calls of the unprofiled binary under cache-hit load (strace -c)
 *
 * Prints the top functions by self time and by inclusive time, and time per
 * source (ours, libsodium, other dependencies, runtime). The raw .cpuprofile is
 * kept in bench/results/profiles/ for Chrome DevTools or speedscope.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connectOverHttp } from '../test/support/binary.ts';
import { startEntra } from '../test/support/entra.ts';
import { freePort, initArgs, runJsonChild, serveReady, sleep, stopChild } from './lib.ts';
import type { LoadResult } from './load.ts';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', 'results', 'profiles');
const what = process.argv[2] ?? 'cache';
const seconds = Number(process.argv[3] ?? 5);
mkdirSync(OUT, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'broker-prof-'));
const BIN = join(ROOT, 'dist', 'broker');
const profOpts = (dir: string, intervalUs: number) => `--cpu-prof --cpu-prof-dir=${dir} --cpu-prof-interval=${intervalUs}`;
const PASSCODE = 'bench passcode 0123456789';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

function summarize(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const bySource = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const n = byId.get(p.samples[i]!)!;
    total += dt;
    const name = n.callFrame.functionName;
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      if (name === '(idle)') idle += dt;
    }
    self.set(key(n), (self.get(key(n)) ?? 0) + dt);
    bySource.set(source(n.callFrame.url, name), (bySource.get(source(n.callFrame.url, name)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const k = key(byId.get(id)!);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const fmt = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `  ${v.toFixed(1).padStart(9)} ms ${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  return [
    `profile ${file}: ${total.toFixed(0)} ms sampled, ${idle.toFixed(0)} ms idle, ${busy.toFixed(0)} ms busy (percentages of busy)`,
    'by source (self time):',
    fmt(bySource),
    `top ${top} by self time:`,
    fmt(self),
    `top ${top} by inclusive time:`,
    fmt(incl),
  ].join('\n');
}

function short(url: string): string {
  return url.replace(/^.*\/(src|bin|node_modules)\//, '$1/').replace(/^file:\/\//, '');
}

function source(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)') return fn;
  if (url.includes('libsodium')) return 'libsodium-wrappers';
  if (url.includes('node_modules')) return `dependency ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]}`;
  if (/\/(src|bin)\//.test(url)) return 'broker (src/)';
  if (url.startsWith('node:') || url.startsWith('bun:') || url.includes('builtin') || url === '') return 'runtime (Bun, native or builtins)';
  return url;
}

function latestProfile(dir: string): string {
  const f = readdirSync(dir)
    .filter((x) => x.endsWith('.cpuprofile'))
    .sort()
    .pop();
  if (!f) throw new Error(`no .cpuprofile in ${dir}`);
  return join(dir, f);
}

async function serveProfiled(
  ttl: number,
  logins: number,
  profiled = true,
): Promise<{ stop: () => Promise<string>; pid: number; url: string; port: number; authids: string[]; entra: Awaited<ReturnType<typeof startEntra>> }> {
  const entra = await startEntra({ acceptRedirectUri: (u) => /^http:\/\/127\.0\.0\.1:\d+\/logged-in$/.test(u) });
  const home = join(work, 'home');
  const port = await freePort();
  writeFileSync(join(work, 'secret'), entra.clientSecret);
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', BROKER_HOME: home };
  const init = spawnSync(BIN, initArgs(entra, join(work, 'secret'), port, PASSCODE), { env, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(init.stderr);
  const profDir = join(work, 'prof');
  const url = `http://127.0.0.1:${port}`;
  const { child } = await serveReady(
    BIN,
    { name: what, url, log: join(work, 'serve.log') },
    profiled ? { ...env, BUN_OPTIONS: profOpts(profDir, 250) } : env,
    new Set(),
  );
  entra.setAccessTokenTtl(ttl);
  const authids: string[] = [];
  for (let i = 0; i < logins; i++) authids.push((await connectOverHttp(url, PASSCODE, (u, o) => entra.login(u, o))).authid);
  return {
    pid: child.pid!,
    url,
    port,
    authids,
    entra,
    stop: async () => {
      await stopChild(child, 'SIGTERM', 10_000);
      await entra.close();
      return profiled ? latestProfile(profDir) : '';
    },
  };
}

let file: string;
if (what === 'summarize') {
  process.stdout.write(`${summarize(resolve(process.argv[3]!), Number(process.argv[4] ?? 25))}\n`);
  process.exit(0);
}
/** Cache hits from 50 connections for `seconds` (after a warm-up), from bench/load.ts in its own process. */
function cacheHitLoad(s: { port: number; authids: string[] }, warmupMs: number): Promise<LoadResult> {
  return runJsonChild<LoadResult>(
    join(ROOT, 'bench', 'load.ts'),
    {
      mode: 'closed',
      host: '127.0.0.1',
      port: s.port,
      path: '/refresh',
      connections: 50,
      warmupMs,
      durationMs: seconds * 1000,
      headerSets: s.authids.map((a) => ({ 'X-AuthID': a })),
      hardTimeoutMs: (seconds + 10) * 1000,
    },
    (seconds + 20) * 1000,
  );
}

if (what === 'cache') {
  const s = await serveProfiled(3600, 3);
  const r = await cacheHitLoad(s, 500);
  process.stdout.write(
    `load (profiled, so slower than in npm run bench): ${r.rps}/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}\n`,
  );
  file = await s.stop();
} else if (what === 'syscalls') {
  // System calls per cache hit: strace -c attached to the unprofiled binary while the load runs.
  const s = await serveProfiled(3600, 3, false);
  const traceFile = join(work, 'strace.txt');
  const load = cacheHitLoad(s, 300);
  await sleep(300);
  const trace = spawn('strace', ['-c', '-f', '-o', traceFile, '-p', String(s.pid)], { stdio: 'ignore' });
  const r = await load;
  trace.kill('SIGINT');
  await new Promise((done) => trace.once('exit', done));
  await s.stop();
  process.stdout.write(`load (traced, so slower): ${r.rps}/s over ${r.totalRequests} requests; strace -c -f (counts cover the traced part only):\n`);
  process.stdout.write(readFileSync(traceFile, 'utf8'));
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
} else if (what === 'refresh') {
  const s = await serveProfiled(30, 1);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000 && n < 5000) {
    const res = await fetch(`${s.url}/refresh`, { headers: { 'x-authid': s.authids[0]! } });
    await res.arrayBuffer();
    n++;
  }
  process.stdout.write(`${n} refreshes, ${s.entra.stats().byGrant.refresh_token} upstream\n`);
  file = await s.stop();
} else if (what === 'version') {
  const profDir = join(work, 'prof');
  for (let i = 0; i < 5; i++) spawnSync(BIN, ['--version'], { env: { PATH: process.env.PATH ?? '', HOME: '/tmp', BUN_OPTIONS: profOpts(profDir, 20) } });
  file = latestProfile(profDir);
} else if (what === 'seal') {
  const profDir = join(work, 'prof');
  const script = join(work, 'seal.ts');
  writeFileSync(
    script,
    `
import { deriveKeys, openJson, sealJson } from '${ROOT}/src/crypto/seal.ts';
import { generateAuthId } from '${ROOT}/src/crypto/authid.ts';
import { loadSodium } from '${ROOT}/src/crypto/sodium.ts';
import { realisticGrant } from '${ROOT}/bench/seed.ts';
const sodium = await loadSodium();
const keys = deriveKeys(sodium, generateAuthId((n) => sodium.randombytes_buf(n)).parsed);
const g = realisticGrant(Date.now());
const t0 = performance.now(); let n = 0;
while (performance.now() - t0 < ${seconds * 1000} && n < 2_000_000) { openJson(sodium, keys.sealKey, sealJson(sodium, keys.sealKey, g)); n++; }
console.log(Math.round(n / (performance.now() - t0) * 1000) + ' seal+open per second (profiled)');
`,
  );
  const r = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=100', script], { encoding: 'utf8' });
  process.stdout.write(r.stdout + r.stderr);
  file = latestProfile(profDir);
} else {
  process.stderr.write('usage: bun bench/profile.ts cache|refresh|version|seal [seconds]\n');
  process.exit(2);
}
const kept = join(OUT, `${what}.cpuprofile`);
writeFileSync(kept, readFileSync(file));
process.stdout.write(`${summarize(kept)}\n`);
rmSync(work, { recursive: true, force: true });
process.exit(0);
