/**
 * A TCP proxy on loopback in front of a server (PostgreSQL), for fault tests: it
 * can "blackhole" its connections, as a NAT or firewall that drops packets
 * without a reset does. A blackholed connection stays open at both ends, but
 * nothing crosses it any more, either way; what was sent meanwhile is held and
 * delivered when the hole closes (as TCP retransmits once the path heals).
 */
import { connect, createServer, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  server: Socket;
  /** The first bytes the client sent: PostgreSQL's startup message (user, database, application_name). */
  startup: string;
  blackholed: boolean;
  held: { to: Socket; data: Buffer }[];
}

export interface TcpProxy {
  /** `host:port` to connect to instead of the server. */
  readonly address: string;
  readonly port: number;
  /**
   * Blackholes the connections open now (or those `which` selects, by their startup
   * message), and with `newOnes` every connection made from now on too.
   */
  blackhole(opts?: { which?: (startup: string) => boolean; newOnes?: boolean }): number;
  /** Lets everything through again, held data first. */
  heal(): void;
  /** Startup messages of the connections open now: which client opened what. */
  open(): string[];
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let newOnes = false;
  const forward = (p: Pair, to: Socket, data: Buffer) => {
    if (p.blackholed) p.held.push({ to, data });
    else to.write(data);
  };
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const p: Pair = { client, server: upstream, startup: '', blackholed: newOnes, held: [] };
    pairs.add(p);
    client.on('data', (d: Buffer) => {
      if (!p.startup) p.startup = d.toString('latin1');
      forward(p, upstream, d);
    });
    upstream.on('data', (d: Buffer) => forward(p, client, d));
    const end = () => {
      pairs.delete(p);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    blackhole(opts = {}) {
      let n = 0;
      for (const p of pairs) {
        if (opts.which && !opts.which(p.startup)) continue;
        p.blackholed = true;
        n++;
      }
      if (opts.newOnes) newOnes = true;
      return n;
    },
    heal() {
      newOnes = false;
      for (const p of pairs) {
        p.blackholed = false;
        for (const { to, data } of p.held.splice(0)) to.write(data);
      }
    },
    open: () => [...pairs].map((p) => p.startup),
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}
