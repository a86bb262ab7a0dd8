/**
 * The quick start's first command: `./install.sh` on a copy of the repository
 * (its tracked files only, no node_modules, no dist), with PREFIX set; run twice.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'broker-install-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('install.sh installs the binary under $PREFIX/bin, says where, and can run again', { timeout: 240_000 }, () => {
  const copy = join(work, 'broker');
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: repo, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    if (!existsSync(join(repo, f))) continue; // deleted in the working tree
    mkdirSync(dirname(join(copy, f)), { recursive: true });
    cpSync(join(repo, f), join(copy, f));
  }
  const prefix = join(work, 'prefix');
  const env = { ...process.env, PREFIX: prefix };
  for (let round = 1; round <= 2; round++) {
    const r = spawnSync('bash', ['./install.sh'], { cwd: copy, env, encoding: 'utf8', timeout: 200_000 });
    expect(r.status, `round ${round}:\n${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`installed broker [0-9.]+ to ${prefix}/bin/broker`));
  }
  const bin = join(prefix, 'bin', 'broker');
  expect(statSync(bin).mode & 0o111).not.toBe(0);
  expect(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()).toBe(
    (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version,
  );
});
