/**
 * `npm run bench:release`: size and start-up of each release binary, so that growth
 * shows. Builds the archives first (`npm run release`, cached), unpacks the binaries,
 * and times `broker --version` (spawn to exit) natively where this machine runs the
 * binary, and under qemu-user for linux-arm64. Rounds are interleaved across targets;
 * the table shows medians (BENCH_ROUNDS, default 9, at least 5).
 * The musl builds need a musl libstdc++ that this machine has not, and the macOS
 * builds need macOS: their sizes are listed, their start-up is not measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveBase, archivePath, release, TARGETS } from '../scripts/release.ts';
import { machine, median, round, timeProcess } from './lib.ts';

const ROUNDS = Math.max(5, Number(process.env.BENCH_ROUNDS ?? 9));
const QEMU: Record<string, string[]> = {
  'linux-arm64': ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'],
};
const NATIVE = process.platform === 'linux' && process.arch === 'x64' ? ['linux-x64'] : [];

const started = performance.now();
const m = machine();
release((l) => console.error(`==> ${l}`));
const dir = mkdtempSync(join(tmpdir(), 'broker-bench-release-'));
try {
  const rows = TARGETS.map((t) => {
    const bin = join(dir, t.name);
    mkdirSync(bin);
    execFileSync('tar', ['-xzf', archivePath(t), '-C', bin, '--strip-components=1', `${archiveBase(t)}/broker`]);
    const runner = NATIVE.includes(t.name) ? [] : QEMU[t.name];
    return {
      target: t.name,
      binaryBytes: statSync(join(bin, 'broker')).size,
      archiveBytes: statSync(archivePath(t)).size,
      how: runner === undefined ? null : runner.length ? 'qemu-user' : 'native',
      cmd: runner === undefined ? null : [...runner, join(bin, 'broker'), '--version'],
      ms: [] as number[],
    };
  });
  for (const r of rows) if (r.cmd) timeProcess(r.cmd, {}); // warm the page cache; not counted
  for (let i = 0; i < ROUNDS; i++) {
    for (const r of rows) {
      if (!r.cmd) continue;
      const t = timeProcess(r.cmd, {});
      if (t.code !== 0) throw new Error(`${r.cmd.join(' ')} exited ${t.code}`);
      r.ms.push(t.ms);
    }
  }
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  console.log(`${m.cores} cores (${m.cpuModel}), Bun ${m.bun}, Linux ${m.kernel}, load ${m.loadavgStart.join(' ')}; medians of ${ROUNDS} rounds\n`);
  console.log('| target | binary | archive (.tar.gz) | `--version` | run as |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.target} | ${mb(r.binaryBytes)} | ${mb(r.archiveBytes)} | ${r.cmd ? `${round(median(r.ms), 1)} ms` : 'not run'} | ${r.how ?? '—'} |`);
  }
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    'bench/results/release.json',
    JSON.stringify({ machine: m, rounds: ROUNDS, rows: rows.map(({ cmd: _, ...r }) => ({ ...r, medianMs: r.ms.length ? median(r.ms) : null })) }, null, 2),
  );
  console.error(`(${((performance.now() - started) / 1000).toFixed(0)} s; every round in bench/results/release.json)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
