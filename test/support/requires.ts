import { spawnSync } from 'node:child_process';

/**
 * Tests that need something of the machine (root, tmux, Chromium, systemd-analyze)
 * are skipped with their reason on a developer's machine that lacks it. Under CI
 * (`CI` set) `.ci/run` installs every such tool, so a missing one is a failure there:
 * CI never passes by skipping.
 */
export function unavailable(file: string, what: string, problem: string | null | undefined): boolean {
  if (!problem) return false;
  if (process.env.CI) throw new Error(`${file}: ${what} cannot run in CI: ${problem} (.ci/run should have installed it)`);
  console.warn(`${file}: SKIPPING ${what}: ${problem}`);
  return true;
}

/** Why a command cannot run here, or null when it can. */
export function missingCommand(cmd: string, args: string[] = ['--version']): string | null {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  if (r.error) return `${cmd} is not installed (${(r.error as NodeJS.ErrnoException).code})`;
  return r.status === 0 ? null : `${cmd} ${args.join(' ')} exits ${r.status}`;
}
