/**
 * `npm run release`: cross-compiles the binary for every supported platform and
 * packs each into dist/release/broker-<version>-<os>-<arch>[-musl].tar.gz (broker,
 * install.sh, README.md, LICENSE, and a SHA256SUMS of those that install.sh checks),
 * next to a SHA256SUMS of the tarballs.
 *
 * Reproducible: archives have sorted entries, fixed owners, and the commit's time as
 * every mtime; gzip leaves out name and time. Cached: when nothing that goes into a
 * release changed since the last run (same sources, lockfile, commit), it does
 * nothing, so tests can call it freely. Bounded: each target build has a time limit.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { compile, gitCommit, ROOT } from './build.ts';

export interface ReleaseTarget {
  /** The name in the archive: linux-arm64, linux-x64-musl, darwin-arm64, ... */
  name: string;
  /** Bun's --target. */
  bun: string;
}

export const TARGETS: readonly ReleaseTarget[] = [
  { name: 'linux-x64', bun: 'bun-linux-x64' },
  { name: 'linux-arm64', bun: 'bun-linux-arm64' },
  { name: 'linux-x64-musl', bun: 'bun-linux-x64-musl' },
  { name: 'linux-arm64-musl', bun: 'bun-linux-arm64-musl' },
  { name: 'darwin-arm64', bun: 'bun-darwin-arm64' },
  { name: 'darwin-x64', bun: 'bun-darwin-x64' },
];

export const RELEASE_DIR = join(ROOT, 'dist', 'release');
/** Shipped beside the binary in every archive. */
const DOCS = ['install.sh', 'README.md', 'LICENSE'] as const;
/** Everything that can change what a release contains. */
const INPUTS = ['bin', 'src', 'scripts/build.ts', 'scripts/release.ts', 'package.json', 'package-lock.json', 'tsconfig.json', ...DOCS];

export const archiveBase = (t: ReleaseTarget, version = pkg.version) => `broker-${version}-${t.name}`;
export const archivePath = (t: ReleaseTarget) => join(RELEASE_DIR, `${archiveBase(t)}.tar.gz`);

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function inputKey(commit: string): string {
  const h = createHash('sha256').update(`commit ${commit}\nbun ${Bun.version}\n`);
  const walk = (p: string) => {
    const full = join(ROOT, p);
    if (statSync(full).isDirectory()) {
      for (const e of readdirSync(full).sort()) walk(join(p, e));
    } else {
      h.update(`${p}\0`).update(readFileSync(full)).update('\0');
    }
  };
  for (const p of INPUTS) walk(p);
  return h.digest('hex');
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
}

/** The commit's time, so that archives built from one commit are byte for byte the same. */
function sourceDateEpoch(commit: string): number {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  if (!commit) return 0;
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : 0;
}

/** Builds what is missing or stale; returns the archive paths. `log` gets one line per step. */
export function release(log: (line: string) => void = () => {}): string[] {
  const commit = gitCommit();
  const key = inputKey(commit);
  const keyFile = join(RELEASE_DIR, '.inputs');
  const archives = TARGETS.map(archivePath);
  const sums = join(RELEASE_DIR, 'SHA256SUMS');
  if (existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key && [...archives, sums].every((f) => existsSync(f))) {
    log(`up to date: ${relative(ROOT, RELEASE_DIR)} (${pkg.version}${commit ? `+${commit}` : ''})`);
    return archives;
  }
  rmSync(RELEASE_DIR, { recursive: true, force: true });
  const staging = join(RELEASE_DIR, '.staging');
  mkdirSync(staging, { recursive: true });
  const mtime = sourceDateEpoch(commit);
  for (const t of TARGETS) {
    const started = Date.now();
    const dir = join(staging, archiveBase(t));
    mkdirSync(dir, { recursive: true });
    const bin = join(dir, 'broker');
    compile({ outfile: bin, target: t.bun, commit });
    // The source maps (the binary's, and one per chunk of the split bundle) stay out of the archive: they are for profiling builds, not for users.
    for (const f of readdirSync(dir)) if (f.endsWith('.map')) rmSync(join(dir, f), { force: true });
    for (const f of DOCS) copyFileSync(join(ROOT, f), join(dir, f));
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), f === 'broker' || f === 'install.sh' ? 0o755 : 0o644);
    const names = ['broker', ...DOCS];
    writeFileSync(join(dir, 'SHA256SUMS'), names.map((f) => `${sha256(join(dir, f))}  ${f}\n`).join(''));
    run(
      'tar',
      ['--sort=name', `--mtime=@${mtime}`, '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-cf', `${archiveBase(t)}.tar`, archiveBase(t)],
      staging,
    );
    run('gzip', ['-n', '-f', `${archiveBase(t)}.tar`], staging);
    copyFileSync(join(staging, `${archiveBase(t)}.tar.gz`), archivePath(t));
    log(`built ${relative(ROOT, archivePath(t))} (${(statSync(bin).size / 1e6).toFixed(1)} MB binary, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  rmSync(staging, { recursive: true, force: true });
  writeFileSync(sums, archives.map((a) => `${sha256(a)}  ${relative(RELEASE_DIR, a)}\n`).join(''));
  writeFileSync(keyFile, key);
  return archives;
}

if (import.meta.main) {
  try {
    release((l) => console.log(`==> ${l}`));
  } catch (e) {
    console.error(`release: ${(e as Error).message}`);
    process.exit(1);
  }
}
