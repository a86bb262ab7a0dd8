import { describe, expect, it } from 'vitest';
import { sayError, sayWarning, voiced } from '../src/cli/voice.ts';

describe("the CLI's one voice", () => {
  it('prefixes, starts lower-case and drops the trailing period of the first line', () => {
    expect(voiced('error', 'No settings in /srv/broker.')).toBe('broker: error: no settings in /srv/broker');
    expect(voiced('warning', 'The app secret expires in 9 days (2030-01-01).')).toBe('broker: warning: the app secret expires in 9 days (2030-01-01)');
  });
  it('keeps names and identifiers as written', () => {
    expect(voiced('error', 'AuthID is mangled.')).toBe('broker: error: AuthID is mangled');
    expect(voiced('error', 'BROKER_HOME is not writable.')).toBe('broker: error: BROKER_HOME is not writable');
    expect(voiced('error', "Microsoft's token endpoint failed.")).toBe("broker: error: Microsoft's token endpoint failed");
    expect(voiced('error', '--user NAME goes with --system.')).toBe('broker: error: --user NAME goes with --system');
  });
  it('puts the hint on its own line, and keeps the lines after the first as they are', () => {
    const lines: string[] = [];
    sayError({ err: (t) => lines.push(t) }, 'Wrote it, but systemctl failed.', 'Run this by hand:\n  systemctl daemon-reload');
    sayWarning({ err: (t) => lines.push(t) }, 'Not refreshed for 61 days.');
    expect(lines).toEqual([
      'broker: error: wrote it, but systemctl failed',
      'broker: hint: run this by hand:\n  systemctl daemon-reload',
      'broker: warning: not refreshed for 61 days',
    ]);
  });
});
