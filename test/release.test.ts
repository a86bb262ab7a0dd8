/**
 * The release archives (`npm run release`, cached under dist/release by a hash of
 * their inputs, so a re-run costs nothing): their contents and checksums, install.sh
 * from an unpacked archive without Node.js, npm or Bun, and the foreign binaries:
 * linux-arm64 driven end to end under qemu-user, the musl and macOS builds checked
 * for their format (see the README for why those two are not run here).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pkg from '../package.json' with { type: 'json' };
import { gitCommit } from '../scripts/build.ts';
import { archiveBase, archivePath, RELEASE_DIR, TARGETS } from '../scripts/release.ts';
import { BINARY, configuredHome, connectOverHttp, LOOPBACK_CALLBACK, run, serve, type Command } from './support/binary.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const repo = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'broker-release-'));
const unpacked = (name: string) => join(work, 'unpacked', archiveBase(TARGETS.find((t) => t.name === name)!));
const binaryOf = (name: string) => join(unpacked(name), 'broker');
const expectedVersion = `${pkg.version}${gitCommit() ? `+${gitCommit()}` : ''}`;

beforeAll(() => {
  const r = spawnSync(process.execPath, ['scripts/release.ts'], { cwd: repo, encoding: 'utf8', timeout: 1_200_000 });
  if (r.status !== 0) throw new Error(`npm run release failed:\n${r.stdout}\n${r.stderr}`);
  mkdirSync(join(work, 'unpacked'));
  for (const t of TARGETS) execFileSync('tar', ['-xzf', archivePath(t), '-C', join(work, 'unpacked')]);
}, 1_260_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('release archives', () => {
  it('one per target, each with broker, install.sh, README.md, LICENSE and their SHA256SUMS, all checksummed', () => {
    const sums = readFileSync(join(RELEASE_DIR, 'SHA256SUMS'), 'utf8');
    for (const t of TARGETS) {
      expect(sums).toContain(`  ${archiveBase(t)}.tar.gz\n`);
      const listing = execFileSync('tar', ['-tzf', archivePath(t)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .sort();
      expect(listing).toEqual(['', 'LICENSE', 'README.md', 'SHA256SUMS', 'broker', 'install.sh'].map((f) => `${archiveBase(t)}/${f}`));
      const inner = spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: unpacked(t.name), encoding: 'utf8' });
      expect(inner.status, inner.stdout + inner.stderr).toBe(0);
    }
    // What the README tells a downloader to run.
    const outer = spawnSync('sha256sum', ['-c', '--ignore-missing', 'SHA256SUMS'], { cwd: RELEASE_DIR, encoding: 'utf8' });
    expect(outer.status, outer.stdout + outer.stderr).toBe(0);
    expect(readFileSync(join(unpacked('linux-x64'), 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
  });

  it("--version names the commit, the same in a release binary and in `npm run build`'s", () => {
    const v = execFileSync(binaryOf('linux-x64'), ['--version'], { encoding: 'utf8' }).trim();
    expect(v).toBe(expectedVersion);
    expect(execFileSync(BINARY, ['--version'], { encoding: 'utf8' }).trim()).toBe(v);
  });

  it('every binary is for its platform: ELF machine and loader for Linux (glibc, musl), Mach-O CPU type for macOS', () => {
    const elf = (name: string) => {
      const b = readFileSync(binaryOf(name));
      expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
      const interp = /program interpreter: (\S+)\]/.exec(execFileSync('readelf', ['-l', binaryOf(name)], { encoding: 'utf8' }))?.[1];
      return { machine: b.readUInt16LE(18), interp };
    };
    expect(elf('linux-x64')).toEqual({ machine: 62, interp: '/lib64/ld-linux-x86-64.so.2' });
    expect(elf('linux-arm64')).toEqual({ machine: 183, interp: '/lib/ld-linux-aarch64.so.1' });
    expect(elf('linux-x64-musl')).toEqual({ machine: 62, interp: '/lib/ld-musl-x86_64.so.1' });
    expect(elf('linux-arm64-musl')).toEqual({ machine: 183, interp: '/lib/ld-musl-aarch64.so.1' });
    // What an Alpine user must have installed: the README says `apk add libstdc++`.
    for (const name of ['linux-x64-musl', 'linux-arm64-musl']) {
      const needed = execFileSync('readelf', ['-d', binaryOf(name)], { encoding: 'utf8' })
        .split('\n')
        .flatMap((l) => /\(NEEDED\).*\[(.+)\]/.exec(l)?.[1] ?? [])
        .sort();
      expect(needed).toEqual([`libc.musl-${name.startsWith('linux-x64') ? 'x86_64' : 'aarch64'}.so.1`, 'libstdc++.so.6'].sort());
    }
    const macho = (name: string) => {
      const b = readFileSync(binaryOf(name));
      return { magic: b.readUInt32LE(0), cpu: b.readUInt32LE(4), filetype: b.readUInt32LE(12) };
    };
    // MH_MAGIC_64, CPU_TYPE_ARM64 / CPU_TYPE_X86_64, MH_EXECUTE.
    expect(macho('darwin-arm64')).toEqual({ magic: 0xfeedfacf, cpu: 0x0100000c, filetype: 2 });
    expect(macho('darwin-x64')).toEqual({ magic: 0xfeedfacf, cpu: 0x01000007, filetype: 2 });
  });
});

describe('install.sh from an unpacked release', () => {
  /** A PATH with only the tools install.sh uses: no node, npm or bun. */
  function bareTools(): string {
    const dir = join(work, 'bare-bin');
    if (existsSync(dir)) return dir;
    mkdirSync(dir);
    for (const tool of ['bash', 'dirname', 'grep', 'sha256sum', 'install', 'uname']) {
      const where = execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      symlinkSync(where, join(dir, tool));
    }
    return dir;
  }
  const install = (dir: string, prefix: string) =>
    spawnSync(join(bareTools(), 'bash'), [join(dir, 'install.sh')], {
      env: { PATH: bareTools(), HOME: work, PREFIX: prefix },
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('installs the prebuilt binary, checked against SHA256SUMS, with no Node.js, npm or Bun on the PATH', () => {
    for (const tool of ['node', 'npm', 'bun']) expect(existsSync(join(bareTools(), tool))).toBe(false);
    const prefix = join(work, 'prefix-ok');
    const r = install(unpacked('linux-x64'), prefix);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('broker matches SHA256SUMS');
    expect(r.stdout).toContain(`installed broker ${expectedVersion} to ${prefix}/bin/broker`);
    expect(readFileSync(join(prefix, 'bin', 'broker')).equals(readFileSync(binaryOf('linux-x64')))).toBe(true);
  });

  it('refuses a binary that does not match SHA256SUMS, and installs nothing', () => {
    const dir = join(work, 'tampered');
    cpSync(unpacked('linux-x64'), dir, { recursive: true });
    appendFileSync(join(dir, 'broker'), '\0');
    const prefix = join(work, 'prefix-tampered');
    const r = install(dir, prefix);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/broker does not match its checksum in SHA256SUMS .* refusing to install it/);
    expect(existsSync(join(prefix, 'bin', 'broker'))).toBe(false);
  });
});

describe('linux-arm64 under qemu-user', () => {
  // qemu translates every instruction: start-up takes seconds, not milliseconds.
  const slow = { timeoutMs: 120_000 };
  const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
  let command: Command;
  beforeAll(() => {
    command = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', binaryOf('linux-arm64')];
  });

  it('--version, init, serve, /healthz, one connect and refreshes that rotate the refresh token', { timeout: 600_000 }, async () => {
    const v = await run(['--version'], {}, { ...slow, command });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(expectedVersion);

    const { home } = await configuredHome(entra, PASSCODE, { ...slow, command });
    const served = await serve(home, {}, [], { command, startTimeoutMs: 120_000 });
    try {
      const health = await fetch(`${served.url}/healthz`);
      expect(health.status).toBe(200);
      expect(((await health.json()) as { version: string }).version).toBe(expectedVersion);

      // A 30-second access token is never served from the cache: each refresh goes to the provider.
      entra.setAccessTokenTtl(30);
      const c = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'qemu-arm64' });
      entra.resetStats();
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } });
        expect(r.status, r.headers.get('x-reason') ?? '').toBe(200);
        expect(((await r.json()) as { access_token: string }).access_token.length).toBeGreaterThan(10);
      }
      // Two rotations in a row: the second used the refresh token the first stored (reuse would have revoked the grant).
      expect(entra.stats().tokenRequests).toBe(2);
    } finally {
      entra.setAccessTokenTtl(3600);
      expect(await served.stop()).toBe(0);
    }
  });
});

it('the archive list matches the README', () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  for (const t of TARGETS) expect(readme).toContain(`broker-<version>-${t.name}.tar.gz`);
  expect(
    readdirSync(RELEASE_DIR)
      .filter((f) => f.endsWith('.tar.gz'))
      .sort(),
  ).toEqual(TARGETS.map((t) => `${archiveBase(t)}.tar.gz`).sort());
});
