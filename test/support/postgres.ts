/**
 * A throw-away PostgreSQL cluster for tests: initdb in a temporary folder, run as a
 * non-root user (PostgreSQL refuses root), listening on 127.0.0.1 only, on a free
 * port, fsync off (the tests do not survive power cuts anyway). Each test gets its
 * own database. With BROKER_TEST_DATABASE_URL set (a CI that runs its own server),
 * that server is used instead and only databases are created and dropped.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './binary.ts';

export interface Cluster {
  /** postgres://… of the maintenance database. */
  url: string;
  /** A fresh, empty database; its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (fast shutdown): for fault tests. No-op for an external server. */
  stop(): void;
  /** Starts it again after stop(). */
  start(): void;
  /** Removes everything. */
  destroy(): Promise<void>;
}

/** Why no cluster can be started here, or null. */
export function postgresMissing(): string | null {
  if (process.env.BROKER_TEST_DATABASE_URL) return null;
  if (!binDir()) return 'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)';
  if (process.getuid?.() === 0 && !runAsUser()) return 'running as root and there is no postgres user to run the server as';
  return null;
}

function binDir(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin/initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : null;
}

function runAsUser(): string | null {
  return spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status === 0 ? 'postgres' : null;
}

function asServerUser(cmd: string, args: string[]): ReturnType<typeof spawnSync> {
  const root = process.getuid?.() === 0;
  const [file, argv] = root ? ['runuser', ['-u', runAsUser()!, '--', cmd, ...args]] : [cmd, args];
  return spawnSync(file, argv, { encoding: 'utf8', timeout: 60_000 });
}

let counter = 0;

/** `tls`: the server also speaks TLS, with a self-signed certificate made by openssl. */
export async function startCluster(opts: { tls?: boolean } = {}): Promise<Cluster> {
  const external = process.env.BROKER_TEST_DATABASE_URL;
  const { SQL } = await import('bun');
  const admin = async <T>(url: string, fn: (sql: InstanceType<typeof SQL>) => Promise<T>): Promise<T> => {
    const sql = new SQL(url, { max: 1, idleTimeout: 1 });
    try {
      return await fn(sql);
    } finally {
      await sql.close();
    }
  };
  const created: string[] = [];
  const createDatabase = async (base: string) => {
    const name = `broker_test_${process.pid}_${Date.now().toString(36)}_${counter++}`;
    await admin(base, (sql) => sql.unsafe(`CREATE DATABASE ${name}`));
    created.push(name);
    const u = new URL(base);
    u.pathname = `/${name}`;
    return u.toString();
  };
  if (external) {
    return {
      url: external,
      createDatabase: () => createDatabase(external),
      stop() {},
      start() {},
      async destroy() {
        for (const n of created) await admin(external, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`)).catch(() => {});
      },
    };
  }
  const bin = binDir()!;
  const dir = mkdtempSync(join(tmpdir(), 'broker-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  if (process.getuid?.() === 0) spawnSync('chown', [runAsUser()!, dir]);
  const init = asServerUser(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  let tls = '';
  if (opts.tls) {
    const [crt, key] = [join(dir, 'server.crt'), join(dir, 'server.key')];
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', crt], {
      encoding: 'utf8',
    });
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
    chmodSync(key, 0o600);
    if (process.getuid?.() === 0) spawnSync('chown', [runAsUser()!, crt, key]);
    tls = ` -c ssl=on -c ssl_cert_file=${crt} -c ssl_key_file=${key}`;
  }
  const start = () => {
    const r = asServerUser(join(bin, 'pg_ctl'), [
      '-D',
      data,
      '-l',
      join(dir, 'log'),
      '-w',
      '-o',
      `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c fsync=off -c full_page_writes=off -c max_connections=300${tls}${process.env.BROKER_TEST_PG_LOG ? ` -c log_statement=all -c log_line_prefix='%m [%p] '` : ''}`,
      'start',
    ]);
    if (r.status !== 0) throw new Error(`pg_ctl start failed: ${r.stderr}${r.stdout}`);
  };
  const stop = () => {
    asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
  };
  start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    createDatabase: () => createDatabase(url),
    stop,
    start,
    async destroy() {
      stop();
      if (process.env.BROKER_TEST_PG_LOG) console.error(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}
