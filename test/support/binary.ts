/**
 * Runs the compiled binary (dist/broker) as a user would: separate processes,
 * a private BROKER_HOME, stdin not a terminal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { authidInPage } from './authid.ts';

export const BINARY = resolve(import.meta.dirname, '../../dist/broker');

/** How to start the broker: dist/broker by default, or another build behind a prefix, e.g. ['qemu-aarch64-static', '-L', root, file]. */
export type Command = readonly string[];
const spawnBroker = (command: Command | undefined, args: string[], options: Parameters<typeof spawn>[2]) => {
  const [file, ...pre] = command ?? [BINARY];
  return spawn(file!, [...pre, ...args], options);
};

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function newHome(): string {
  return join(mkdtempSync(join(tmpdir(), 'broker-e2e-')), 'home');
}

export function run(
  args: string[],
  env: Record<string, string> = {},
  opts: { timeoutMs?: number; input?: string; command?: Command } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnBroker(opts.command, args, {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`broker ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 10_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export async function initHome(p: {
  home: string;
  clientId: string;
  clientSecret: string;
  authority: string;
  port: number;
  passcode: string;
  /** Pages that may receive the AuthID by postMessage; omitted = the broker's defaults. */
  allowedOrigins?: string[];
  /** More `init` flags, e.g. ['--database-url', url]. */
  extraArgs?: string[];
  command?: Command;
  timeoutMs?: number;
}): Promise<RunResult> {
  const secretFile = join(p.home, '..', 'client-secret');
  writeFileSync(secretFile, `${p.clientSecret}\n`, { mode: 0o600 });
  return run(
    [
      'init',
      '--non-interactive',
      '--client-id',
      p.clientId,
      '--client-secret-file',
      secretFile,
      '--authority',
      p.authority,
      '--public-url',
      `http://127.0.0.1:${p.port}`,
      '--listen',
      `127.0.0.1:${p.port}`,
      '--passcode',
      p.passcode,
      ...(p.allowedOrigins ?? []).flatMap((o) => ['--allowed-origin', o]),
      ...(p.extraArgs ?? []),
    ],
    { BROKER_HOME: p.home },
    { command: p.command, timeoutMs: p.timeoutMs },
  );
}

/** The broker's redirect URI on any loopback port: tests start the provider before they know the broker's port. */
export const LOOPBACK_CALLBACK = (uri: string): boolean => /^http:\/\/127\.0\.0\.1:\d+\/logged-in$/.test(uri);

/** `broker init` against the provider on a free port, in a new BROKER_HOME (or the one given); throws if init fails. */
export async function configuredHome(
  provider: { clientId: string; clientSecret: string; authority: string },
  passcode: string,
  opts: { home?: string; allowedOrigins?: string[]; extraArgs?: string[]; command?: Command; timeoutMs?: number } = {},
): Promise<{ home: string; port: number }> {
  const home = opts.home ?? newHome();
  const port = await freePort();
  const r = await initHome({
    home,
    clientId: provider.clientId,
    clientSecret: provider.clientSecret,
    authority: provider.authority,
    port,
    passcode,
    allowedOrigins: opts.allowedOrigins,
    extraArgs: opts.extraArgs,
    command: opts.command,
    timeoutMs: opts.timeoutMs,
  });
  if (r.code !== 0) throw new Error(`broker init exited ${r.code}:\n${r.stderr}`);
  return { home, port };
}

export interface Served {
  child: ChildProcess;
  url: string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function serve(
  home: string,
  env: Record<string, string> = {},
  args: string[] = [],
  opts: { command?: Command; startTimeoutMs?: number } = {},
): Promise<Served> {
  const child = spawnBroker(opts.command, ['serve', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', BROKER_HOME: home, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`serve did not start:\n${err}`)), opts.startTimeoutMs ?? 10_000);
    child.stderr!.on('data', (d) => {
      err += d;
      // Plain text, or inside a JSON line with --log-format json.
      const m = /listening on (https?:\/\/[^\s"]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      rej(new Error(`serve exited with ${code}:\n${err}`));
    });
  });
  child.stdout!.resume();
  return {
    child,
    url,
    stderr: () => err,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The browser part of connecting, done with fetch: start page form, Microsoft login, callback with the cookie. */
export async function connectOverHttp(
  baseUrl: string,
  passcode: string,
  login: (authorizeUrl: string, opts?: { username?: string }) => Promise<string>,
  opts: { service?: string; username?: string } = {},
): Promise<{ authid: string; keyid: string }> {
  const started = await fetch(`${baseUrl}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ id: opts.service ?? 'onedrivev2', passcode }),
  });
  if (started.status !== 302) throw new Error(`POST /login answered ${started.status}: ${started.headers.get('x-reason')}`);
  const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
  const callback = await login(started.headers.get('location')!, { username: opts.username });
  const res = await fetch(callback, { headers: { cookie } });
  const page = await res.text();
  if (res.status !== 200) throw new Error(`/logged-in answered ${res.status}: ${res.headers.get('x-reason')}`);
  const authid = authidInPage(page);
  return { authid, keyid: authid.split(':')[0]! };
}
