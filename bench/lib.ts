export { freePort } from '../test/support/binary.ts';
/**
 * Small helpers shared by the benchmark scripts: statistics, child processes,
 * ports, and the machine description. Nothing here measures anything by itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile (q in 0..1); NaN for an empty list. */
export function quantile(xs: ArrayLike<number>, q: number): number {
  const n = xs.length;
  if (n === 0) return Number.NaN;
  const sorted = Float64Array.from(xs as ArrayLike<number>).sort();
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with the first line a child prints on stdout (bounded in time). */
export function firstLine(child: ChildProcess, timeoutMs = 15_000, what = 'child'): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no output within ${timeoutMs} ms\n${err}`)), timeoutMs);
    child.stderr?.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before printing a line\n${err}`));
    });
  });
}

/** Runs `bun <script> <json>` and parses the single JSON line it prints. */
export async function runJsonChild<T>(script: string, arg: unknown, timeoutMs: number): Promise<T> {
  const child = spawn(process.execPath, [script, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not finish within ${timeoutMs} ms\n${err}`));
    }, timeoutMs);
    child.once('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`${script} exited with ${code}\n${err}`);
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

/** Waits for a child's exit, killing it hard if it does not go within the bound. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('close', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await gone;
  clearTimeout(timer);
}

/** VmRSS (what the target is about), its peak, and its split into anonymous memory and mapped files (the 100 MB executable). */
export function rssMiB(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  const mb = (key: string) => round(kb(key) / 1024, 1);
  return { rss: mb('VmRSS'), hwm: mb('VmHWM'), anon: mb('RssAnon'), file: mb('RssFile') };
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  bun: string;
  kernel: string;
  loadavgStart: number[];
  loadavgEnd?: number[];
}

export function machine(): Machine {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model;
  } catch {
    // not Linux: keep os.cpus()
  }
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux
  }
  return {
    cpuModel: model,
    cores: cpus().length,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    bun: Bun.version,
    kernel,
    loadavgStart: loadavg().map((x) => round(x, 2)),
  };
}

/** Wall-clock timing of a whole process, from spawn to exit, in milliseconds. */
export function timeProcess(cmd: string[], env: Record<string, string>): { ms: number; code: number | null; stdout: string } {
  const t0 = performance.now();
  const r = Bun.spawnSync(cmd, { env, stdout: 'pipe', stderr: 'pipe', timeout: 10_000 });
  const ms = performance.now() - t0;
  return { ms, code: r.exitCode, stdout: r.stdout.toString() };
}

/** CPU time a process has used so far, all threads, in milliseconds (sum of /proc/<pid>/task/<tid>/schedstat). */
export function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}

/** `broker init` for a benchmark home: the local provider's app, loopback on `port`, a known passcode. */
export function initArgs(app: { clientId: string; authority: string }, secretFile: string, port: number, passcode: string): string[] {
  const url = `http://127.0.0.1:${port}`;
  return [
    'init',
    '--non-interactive',
    '--client-id',
    app.clientId,
    '--client-secret-file',
    secretFile,
    '--authority',
    app.authority,
    '--public-url',
    url,
    '--listen',
    `127.0.0.1:${port}`,
    '--passcode',
    passcode,
  ];
}

/**
 * Spawns `broker serve` for a benchmark home and waits for it: ready = spawn until the
 * first successful GET /healthz. The child joins `children`, which the script stops at its end.
 */
export async function serveReady(
  binary: string,
  home: { name: string; url: string; log: string },
  env: Record<string, string>,
  children: Set<ChildProcess>,
): Promise<{ child: ChildProcess; readyMs: number }> {
  const t0 = performance.now();
  const child = spawn(binary, ['serve'], { env, stdio: ['ignore', 'ignore', openSync(home.log, 'a')] });
  children.add(child);
  child.once('close', () => children.delete(child));
  for (let i = 0; i < 5000; i++) {
    if (child.exitCode !== null) throw new Error(`broker serve (${home.name}) exited with ${child.exitCode}; see ${home.log}`);
    try {
      const res = await fetch(`${home.url}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return { child, readyMs: performance.now() - t0 };
    } catch {
      // not listening yet
    }
    await sleep(1);
  }
  throw new Error(`broker serve (${home.name}) not ready within the bound`);
}
