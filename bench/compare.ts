/**
 * A/B comparison of two broker binaries (e.g. dist/broker and a build of a
 * proposed change in a scratch copy), interleaved round by round on the same
 * machine, for the measurements that a change to src/ is meant to move:
 *
 *   bun bench/compare.ts <binary-A> <binary-B> [--rounds 5] [--b-stderr null] [--only cache,refresh,version,list]
 *
 * --b-stderr null sends B's log to /dev/null instead of a file (to price the
 * per-request log line without changing any code). Prints medians and B/A ratios.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { connectOverHttp } from '../test/support/binary.ts';
import { startEntra } from '../test/support/entra.ts';
import { cpuMs, freePort, initArgs, median, round, runJsonChild, sleep, stopChild, timeProcess } from './lib.ts';
import type { LoadResult } from './load.ts';
import { seedStore } from './seed.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string' }, 'b-stderr': { type: 'string' }, only: { type: 'string' } },
});
const [binA, binB] = positionals.map((p) => resolve(p));
if (!binA || !binB) {
  process.stderr.write('usage: bun bench/compare.ts <binary-A> <binary-B> [--rounds 5] [--b-stderr null] [--only cache,refresh,version,list]\n');
  process.exit(2);
}
const ROUNDS = Math.min(15, Number(values.rounds ?? 5));
const only = new Set((values.only ?? 'cache,refresh,version,list').split(','));
const PASSCODE = 'bench passcode 0123456789';
const work = mkdtempSync(join(tmpdir(), 'broker-compare-'));
const children: ChildProcess[] = [];
const hard = setTimeout(() => {
  for (const c of children) c.kill('SIGKILL');
  process.stderr.write('compare: hard deadline reached\n');
  process.exit(1);
}, 8 * 60_000);

const entra = await startEntra({ acceptRedirectUri: (u) => /^http:\/\/127\.0\.0\.1:\d+\/logged-in$/.test(u) });

interface Side {
  name: 'A' | 'B';
  bin: string;
  home: string;
  port: number;
  url: string;
  child?: ChildProcess;
  hit: string[];
  ref?: string;
}

async function setup(name: 'A' | 'B', bin: string): Promise<Side> {
  const dir = join(work, name);
  mkdirSync(dir);
  const home = join(dir, 'home');
  const port = await freePort();
  writeFileSync(join(dir, 'secret'), entra.clientSecret);
  const env = envFor(home);
  const r = spawnSync(bin, initArgs(entra, join(dir, 'secret'), port, PASSCODE), { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  await seedStore(join(home, 'broker.db'), 6);
  const stderr = name === 'B' && values['b-stderr'] === 'null' ? openSync('/dev/null', 'w') : openSync(join(dir, 'serve.log'), 'a');
  const child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'ignore', stderr] });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 3000; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      await sleep(2);
    }
  }
  return { name, bin, home, port, url, child, hit: [] };
}

function envFor(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', BROKER_HOME: home };
}

const login = (s: Side) => connectOverHttp(s.url, PASSCODE, (u, o) => entra.login(u, o)).then((r) => r.authid);

const sides = [await setup('A', binA), await setup('B', binB)];
entra.setAccessTokenTtl(3600);
for (const s of sides) for (let i = 0; i < 3; i++) s.hit.push(await login(s));
entra.setAccessTokenTtl(30);
for (const s of sides) s.ref = await login(s);
for (const s of sides) for (const id of [...s.hit, s.ref!]) await (await fetch(`${s.url}/refresh`, { headers: { 'x-authid': id } })).arrayBuffer();

const out: Record<string, { A: number[]; B: number[] }> = {};
const add = (k: string, side: 'A' | 'B', v: number) => (out[k] ??= { A: [], B: [] })[side].push(v);

for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? [sides[1]!, sides[0]!] : sides;
  if (only.has('cache')) {
    for (const s of order) {
      const cpu0 = cpuMs(s.child!.pid!);
      const res = await runJsonChild<LoadResult>(
        join(import.meta.dirname, 'load.ts'),
        {
          mode: 'closed',
          host: '127.0.0.1',
          port: s.port,
          path: '/refresh',
          connections: 50,
          warmupMs: 500,
          durationMs: 2000,
          headerSets: s.hit.map((a) => ({ 'X-AuthID': a })),
          hardTimeoutMs: 20_000,
        },
        30_000,
      );
      if (res.errors) throw new Error(`${s.name}: ${res.errors} errors`);
      add('cache-hit req/s', s.name, res.rps);
      add('cache-hit p50 ms', s.name, res.latencyMs.p50);
      add('cache-hit p99 ms', s.name, res.latencyMs.p99);
      add('server CPU µs/request', s.name, ((cpuMs(s.child!.pid!) - cpu0) * 1000) / res.totalRequests);
    }
  }
  if (only.has('refresh')) {
    const lat: Record<string, number[]> = { A: [], B: [] };
    for (let i = 0; i < 25; i++) {
      for (const s of i % 2 ? [...order].reverse() : order) {
        const t0 = performance.now();
        const res = await fetch(`${s.url}/refresh`, { headers: { 'x-authid': s.ref! } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${s.name}: refresh ${res.status}`);
        lat[s.name]!.push(performance.now() - t0);
      }
    }
    for (const s of sides) add('refresh median ms', s.name, median(lat[s.name]!));
  }
  if (only.has('version') || only.has('list')) {
    const t: Record<string, number[]> = { vA: [], vB: [], lA: [], lB: [] };
    for (let i = 0; i < 15; i++) {
      for (const s of i % 2 ? [...order].reverse() : order) {
        if (only.has('version')) t[`v${s.name}`]!.push(timeProcess([s.bin, '--version'], envFor(s.home)).ms);
        if (only.has('list')) t[`l${s.name}`]!.push(timeProcess([s.bin, 'list'], envFor(s.home)).ms);
      }
    }
    for (const s of sides) {
      if (only.has('version')) add('--version median ms', s.name, median(t[`v${s.name}`]!));
      if (only.has('list')) add('list median ms', s.name, median(t[`l${s.name}`]!));
    }
  }
  process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
}

process.stdout.write(`A = ${binA}\nB = ${binB}${values['b-stderr'] === 'null' ? ' (log to /dev/null)' : ''}\nmedians of ${ROUNDS} interleaved rounds\n`);
for (const [k, v] of Object.entries(out)) {
  const ratios = v.A.map((a, i) => v.B[i]! / a);
  process.stdout.write(
    `${k.padEnd(22)} A ${String(round(median(v.A), 2)).padStart(9)}  B ${String(round(median(v.B), 2)).padStart(9)}  B/A ${round(median(ratios), 3)}  (rounds B/A: ${ratios.map((x) => round(x, 2)).join(' ')})\n`,
  );
}
clearTimeout(hard);
for (const c of children) await stopChild(c);
await entra.close();
rmSync(work, { recursive: true, force: true });
process.exit(0);
