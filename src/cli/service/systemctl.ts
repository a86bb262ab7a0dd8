/**
 * The systemctl calls of `service install|uninstall`. Starting the unit is
 * systemctl's job; when it is missing or fails, the person gets the commands to run.
 */
import { spawnSync } from 'node:child_process';
import { BrokerError } from '../../errors.ts';
import type { UnitMode } from './unit.ts';

/** Bounds every systemctl call: a missing bus or a stuck job must not hang `install`. */
const SYSTEMCTL_TIMEOUT_MS = 30_000;

/** The commands, and what to tell a person when they cannot be run for them. */
export function runSystemctl(mode: UnitMode, steps: string[][], done: string): void {
  const base = mode === 'user' ? ['--user'] : [];
  const shown = (args: string[]) => ['systemctl', ...base, ...args].join(' ');
  for (const [i, args] of steps.entries()) {
    const r = spawnSync('systemctl', [...base, '--no-ask-password', ...args], {
      encoding: 'utf8',
      timeout: SYSTEMCTL_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    let problem: string | undefined;
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') problem = 'systemctl is not available on this machine (no systemd?)';
    else if (code === 'ETIMEDOUT' || r.signal) problem = `\`${shown(args)}\` did not finish within ${SYSTEMCTL_TIMEOUT_MS / 1000} s`;
    else if (r.error) problem = `\`${shown(args)}\` could not run (${code ?? 'error'})`;
    else if (r.status !== 0) {
      const why = `${r.stderr ?? ''}`.trim().split('\n').filter(Boolean).slice(-2).join(' ');
      problem = `\`${shown(args)}\` failed (exit ${r.status})${why ? `: ${why}` : ''}`;
    }
    if (problem) {
      throw new BrokerError('service_manager_failed', `${done}, but ${problem}.`, {
        hint: `Run ${steps.length - i > 1 ? 'these' : 'this'} by hand${mode === 'system' ? ' (as root)' : ''}:\n${steps
          .slice(i)
          .map((a) => `  ${shown(a)}`)
          .join('\n')}${mode === 'user' ? '\n(A user unit needs a running `systemd --user`, i.e. a login session or `loginctl enable-linger`.)' : ''}`,
      });
    }
  }
}
