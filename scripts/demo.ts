/**
 * `npm run demo`: the broker working end to end without a Microsoft app.
 * Starts the local OpenID provider the tests use (a dev dependency, never in the
 * binary), a throw-away BROKER_HOME, `broker init` and `broker serve`, then prints
 * what to open and what to run. Ctrl-C stops everything and deletes the folder.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '..');
const binary = join(root, 'dist', 'broker');
if (!existsSync(binary)) {
  console.error('demo: dist/broker is missing; run ./install.sh (or npm run build) first.');
  process.exit(1);
}

const wanted = Number(process.env.BROKER_DEMO_PORT ?? 8080);
const port = (await portFree(wanted)) ? wanted : await anyPort();
const publicUrl = `http://localhost:${port}`;
const home = join(mkdtempSync(join(tmpdir(), 'broker-demo-')), 'home');
const children: ChildProcess[] = [];

const entra = spawn(process.execPath, [join(root, 'test/support/entra-server.ts'), '--port', '0', '--redirect-uri', `${publicUrl}/logged-in`], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(entra);
const provider = JSON.parse(await firstLine(entra)) as { authority: string; clientId: string; clientSecret: string };

const secretFile = join(home, '..', 'client-secret');
const passcode = randomBytes(6).toString('hex');
const env = { ...process.env, BROKER_HOME: home };
writeFileSync(secretFile, provider.clientSecret, { mode: 0o600 });
const init = spawnSync(
  binary,
  [
    'init',
    '--non-interactive',
    '--client-id',
    provider.clientId,
    '--client-secret-file',
    secretFile,
    '--authority',
    provider.authority,
    '--public-url',
    publicUrl,
    '--listen',
    `127.0.0.1:${port}`,
    '--passcode',
    passcode,
  ],
  { env, encoding: 'utf8' },
);
if (init.status !== 0) {
  console.error(init.stderr);
  await shutdown(1);
}

const serve = spawn(binary, ['serve'], { env, stdio: ['ignore', 'inherit', 'pipe'] });
children.push(serve);
serve.stderr!.pipe(process.stderr);
await new Promise<void>((ok) => {
  let seen = '';
  serve.stderr!.on('data', (d) => {
    seen += d;
    if (seen.includes('listening on')) ok();
  });
});
serve.on('close', (code) => void shutdown(code ?? 0));

console.log(`
  broker demo is running (Ctrl-C stops it and deletes ${home}).

  1. Open            ${publicUrl}/
  2. Passcode        ${passcode}
  3. Sign in at the local test provider with any name (e.g. "alice"), any password.
  4. Copy the AuthID from the page, then:

     export BROKER_AUTHID='<the AuthID>'
     curl -fsS -H "X-AuthID: $BROKER_AUTHID" ${publicUrl}/refresh
     BROKER_HOME=${home} ${binary} list
     BROKER_HOME=${home} ${binary} revoke <keyid>
`);

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

/** Stops the children and waits for them (at most 5 s): a serve still closing its store would write into the folder after it is removed. */
async function shutdown(code: number): Promise<never> {
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  const closed = running.map((c) => new Promise((ok) => c.once('exit', ok)));
  for (const c of running) c.kill('SIGTERM');
  await Promise.race([Promise.all(closed), new Promise((ok) => setTimeout(ok, 5000))]);
  rmSync(join(home, '..'), { recursive: true, force: true });
  process.exit(code);
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((ok, fail) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => ok(l));
    child.once('close', (code) => fail(new Error(`provider exited with ${code}`)));
  });
}

function portFree(p: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = createServer();
    s.once('error', () => ok(false));
    s.listen(p, '127.0.0.1', () => s.close(() => ok(true)));
  });
}

function anyPort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port: p } = s.address() as { port: number };
      s.close(() => ok(p));
    });
  });
}
