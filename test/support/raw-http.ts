/**
 * HTTP/1.1 over a bare socket, for requests `fetch` refuses to send: binary
 * bytes in headers, duplicate headers, invalid request targets, lying framing.
 * One request per connection; the answer is read until its framing says it is
 * complete, the server closes, or the time runs out.
 */
import { connect } from 'node:net';

export interface RawAnswer {
  /** The status code, or null if the server closed without answering. */
  status: number | null;
  head: string;
  body: Buffer;
  /** How the exchange ended. */
  end: 'complete' | 'closed' | 'reset' | 'timeout';
  ms: number;
}

export function rawRequest(
  p: { host: string; port: number; localAddress?: string; timeoutMs?: number },
  request: Buffer | string,
  opts: { head?: boolean } = {},
): Promise<RawAnswer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: p.host, port: p.port, localAddress: p.localAddress });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (end: RawAnswer['end']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = buf.toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const head = headEnd >= 0 ? text.slice(0, headEnd) : text;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : null, head, body: headEnd >= 0 ? buf.subarray(headEnd + 4) : Buffer.alloc(0), end, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), p.timeoutMs ?? 3000);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (complete(buf, opts.head ?? false)) finish('complete');
    });
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', () => finish(buf.length ? 'closed' : 'reset'));
    socket.on('connect', () => {
      socket.write(request, () => {});
    });
  });
}

function complete(buf: Buffer, isHead: boolean): boolean {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return false;
  const head = buf.subarray(0, headEnd).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  const body = buf.subarray(headEnd + 4);
  if (isHead || status === 204 || status === 304 || (status >= 100 && status < 200)) return true;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) return body.length >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return body.includes('\r\n0\r\n\r\n') || body.subarray(0, 5).toString() === '0\r\n\r\n';
  return false;
}

/** Builds a request from parts, byte-exact: header values may hold any bytes. */
export function buildRequest(p: { method: string; target: string | Buffer; headers: [string, string | Buffer][]; body?: Buffer }): Buffer {
  const parts: Buffer[] = [
    Buffer.from(`${p.method} `, 'latin1'),
    Buffer.isBuffer(p.target) ? p.target : Buffer.from(p.target, 'latin1'),
    Buffer.from(' HTTP/1.1\r\n', 'latin1'),
  ];
  for (const [k, v] of p.headers) parts.push(Buffer.from(`${k}: `, 'latin1'), Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1'), Buffer.from('\r\n', 'latin1'));
  parts.push(Buffer.from('\r\n', 'latin1'));
  if (p.body) parts.push(p.body);
  return Buffer.concat(parts);
}
