/**
 * The one way the binary is compiled, for `npm run build` (this machine) and
 * scripts/release.ts (every target), so that both carry the same flags and the
 * same version string. Usage: bun scripts/build.ts [--target bun-linux-arm64] [--outfile dist/broker]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');

export const BUILD_FLAGS = [
  '--compile',
  '--bytecode',
  '--format=esm',
  '--minify',
  '--sourcemap',
  '--no-compile-autoload-dotenv',
  '--no-compile-autoload-bunfig',
  // One chunk per lazily imported module: `--version` and `list` load only theirs, not the whole bundle (half of --version's start-up).
  '--splitting',
] as const;

/**
 * The commit of this checkout (short hash, `.dirty` with uncommitted changes to
 * tracked files), or '' when the sources are not their own git checkout: a copy
 * of the files inside some other repository must not borrow that one's commit.
 */
export function gitCommit(root = ROOT): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: root, encoding: 'utf8', timeout: 10_000 });
  const top = git('rev-parse', '--show-toplevel');
  if (top.status !== 0 || realpathSync(top.stdout.trim()) !== realpathSync(root)) return '';
  const head = git('rev-parse', '--short=10', 'HEAD');
  if (head.status !== 0) return '';
  const dirty = git('status', '--porcelain', '--untracked-files=no').stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? '.dirty' : ''}`;
}

/** Compiles bin/broker.ts for `target` (undefined = this machine) into `outfile`; throws with Bun's output on failure. */
export function compile(opts: { outfile: string; target?: string; commit?: string; timeoutMs?: number }): void {
  const commit = opts.commit ?? gitCommit();
  // With --splitting each chunk's source map lands beside the binary under a hashed name: drop the previous build's.
  const outdir = dirname(resolve(ROOT, opts.outfile));
  if (existsSync(outdir)) for (const f of readdirSync(outdir)) if (f.endsWith('.js.map')) rmSync(join(outdir, f), { force: true });
  const args = [
    'build',
    ...BUILD_FLAGS,
    ...(opts.target ? [`--target=${opts.target}`] : []),
    `--define`,
    `BUILD_COMMIT=${JSON.stringify(commit)}`,
    'bin/broker.ts',
    '--outfile',
    opts.outfile,
  ];
  // process.execPath is the Bun running this script: the pinned devDependency.
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: opts.timeoutMs ?? 300_000 });
  if (r.status !== 0) {
    throw new Error(`bun build ${opts.target ?? '(native)'} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`);
  }
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  try {
    compile({ outfile: flag('--outfile') ?? 'dist/broker', target: flag('--target') });
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
