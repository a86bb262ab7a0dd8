/**
 * HTTP/1.1 load generator, run as its own process so that the client never shares
 * an event loop with the server under test:
 *
 *   bun bench/load.ts '<LoadSpec as JSON>'
 *
 * Opens `connections` keep-alive TCP connections (raw sockets, not fetch, so the
 * connection count is exact), and
 *   - mode "closed": every connection sends its next request as soon as the
 *     previous answer is complete; after `warmupMs`, completed requests and their
 *     latencies (performance.now(), send to last byte) are recorded for
 *     `durationMs`;
 *   - mode "burst": waits until every connection is open, then sends exactly one
 *     request on each in the same tick, and reports every status and body.
 * Prints one JSON line (LoadResult) and exits. Every loop is bounded by
 * `maxRequests` and by `hardTimeoutMs`.
 */
import type { Socket } from 'bun';

export interface LoadSpec {
  mode: 'closed' | 'burst';
  host: string;
  port: number;
  method?: 'GET' | 'POST';
  path: string;
  /** Extra headers per connection, used round-robin (e.g. one X-AuthID each). */
  headerSets: Record<string, string>[];
  connections: number;
  warmupMs?: number;
  durationMs?: number;
  /** Upper bound of recorded requests (closed mode). */
  maxRequests?: number;
  hardTimeoutMs?: number;
}

export interface LoadResult {
  mode: 'closed' | 'burst';
  connections: number;
  requests: number;
  /** Every completed response, warm-up included (to divide server CPU time by). */
  totalRequests: number;
  errors: number;
  statuses: Record<string, number>;
  elapsedMs: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Burst mode: the bodies (first 400 bytes each), in connection order. */
  bodies?: string[];
  truncated?: boolean;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const result = await runLoad(spec);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);

interface Conn {
  socket: Socket<undefined> | null;
  request: Uint8Array;
  buf: Buffer | null;
  sentAt: number;
  done: boolean;
}

async function runLoad(s: LoadSpec): Promise<LoadResult> {
  const maxRequests = s.maxRequests ?? 2_000_000;
  const latencies = new Float64Array(s.mode === 'burst' ? s.connections : maxRequests);
  const statuses: Record<string, number> = {};
  const bodies: string[] = new Array(s.connections).fill('');
  let recorded = 0;
  let completed = 0;
  let errors = 0;
  let recording = s.mode === 'burst';
  let stopped = false;
  let truncated = false;
  let completedBurst = 0;
  let finishBurst: () => void = () => {};
  const burstDone = new Promise<void>((r) => (finishBurst = r));

  const conns: Conn[] = [];
  for (let i = 0; i < s.connections; i++) {
    const extra = s.headerSets.length ? s.headerSets[i % s.headerSets.length]! : {};
    const lines = [`${s.method ?? 'GET'} ${s.path} HTTP/1.1`, `Host: ${s.host}:${s.port}`, 'Accept: application/json'];
    for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
    if (s.method === 'POST') lines.push('Content-Length: 0');
    conns.push({ socket: null, request: new TextEncoder().encode(`${lines.join('\r\n')}\r\n\r\n`), buf: null, sentAt: 0, done: false });
  }

  const send = (c: Conn) => {
    c.sentAt = performance.now();
    const n = c.socket!.write(c.request);
    if (n !== c.request.length) throw new Error(`short write (${n} of ${c.request.length} bytes)`);
  };

  /** Returns the number of bytes of one complete response at the start of buf, or 0 if incomplete. */
  const complete = (c: Conn, buf: Buffer): number => {
    const headerEnd = buf.indexOf('\r\n\r\n');
    if (headerEnd < 0) return 0;
    const head = buf.toString('latin1', 0, headerEnd);
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!m) {
      if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) throw new Error('chunked responses are not supported by bench/load.ts');
      return headerEnd + 4;
    }
    const total = headerEnd + 4 + Number(m[1]);
    if (buf.length < total) return 0;
    const status = head.slice(9, 12);
    completed++;
    if (recording && !stopped) {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status !== '200') errors++;
      if (recorded < latencies.length) latencies[recorded++] = performance.now() - c.sentAt;
      else truncated = true;
    }
    if (s.mode === 'burst') bodies[conns.indexOf(c)] = buf.toString('utf8', headerEnd + 4, Math.min(total, headerEnd + 4 + 400));
    return total;
  };

  const onData = (c: Conn, chunk: Buffer) => {
    let buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
    for (;;) {
      const used = complete(c, buf);
      if (used === 0) break;
      buf = buf.subarray(used);
      if (s.mode === 'burst') {
        c.done = true;
        if (++completedBurst === conns.length) finishBurst();
        break;
      }
      if (stopped || recorded >= maxRequests) {
        c.done = true;
        break;
      }
      send(c);
    }
    c.buf = buf.length ? Buffer.from(buf) : null;
  };

  const hard = setTimeout(() => {
    process.stderr.write(`load: hard timeout after ${s.hardTimeoutMs ?? 60_000} ms\n`);
    process.exit(3);
  }, s.hardTimeoutMs ?? 60_000);

  await Promise.all(
    conns.map(async (c) => {
      c.socket = await Bun.connect({
        hostname: s.host,
        port: s.port,
        socket: {
          data: (_sock, chunk) => onData(c, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)),
          close: () => {
            if (!c.done && !stopped) {
              errors++;
              c.done = true;
              if (s.mode === 'burst' && ++completedBurst === conns.length) finishBurst();
            }
          },
          error: () => {
            errors++;
          },
        },
      });
      c.socket.setNoDelay(true);
    }),
  );

  let t0: number;
  let t1: number;
  if (s.mode === 'burst') {
    t0 = performance.now();
    for (const c of conns) send(c);
    await burstDone;
    t1 = performance.now();
  } else {
    for (const c of conns) send(c);
    await Bun.sleep(s.warmupMs ?? 500);
    recording = true;
    t0 = performance.now();
    const until = t0 + (s.durationMs ?? 2000);
    while (performance.now() < until && recorded < maxRequests) await Bun.sleep(Math.min(50, until - performance.now()));
    stopped = true;
    t1 = performance.now();
  }
  clearTimeout(hard);
  for (const c of conns) c.socket?.end();

  const lat = latencies.subarray(0, recorded).sort();
  const q = (p: number) => (recorded ? lat[Math.min(recorded - 1, Math.floor(p * recorded))]! : Number.NaN);
  let sum = 0;
  for (let i = 0; i < recorded; i++) sum += lat[i]!;
  const elapsedMs = t1 - t0;
  return {
    mode: s.mode,
    connections: s.connections,
    requests: recorded,
    totalRequests: completed,
    errors,
    statuses,
    elapsedMs: Math.round(elapsedMs * 100) / 100,
    rps: Math.round((recorded / elapsedMs) * 1000),
    latencyMs: { p50: r3(q(0.5)), p90: r3(q(0.9)), p99: r3(q(0.99)), max: r3(recorded ? lat[recorded - 1]! : Number.NaN), mean: r3(sum / recorded) },
    ...(s.mode === 'burst' ? { bodies } : {}),
    ...(truncated ? { truncated } : {}),
  };
}

function r3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
