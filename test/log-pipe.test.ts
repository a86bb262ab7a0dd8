/**
 * serve's log on a pipe that fills up (a slow journald, a stalled reader): no
 * line is lost, cut or mixed up, and requests are served meanwhile.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BINARY, configuredHome, connectOverHttp, LOOPBACK_CALLBACK, serve } from './support/binary.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
/** Reads serve's stderr up to "listening on", then not at all until SIGUSR1. */
const SLOW_READER = resolve(import.meta.dirname, 'support/slow-stderr.py');

describe('the request log on a full non-blocking pipe', () => {
  it('every line arrives whole and in order once the reader is back; requests are served meanwhile', async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    const served = await serve(home, {}, [], { command: ['python3', SLOW_READER, BINARY] });
    try {
      const { authid } = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'log-pipe' });
      // About 110 bytes a line: 3,000 lines are five times what a pipe holds (64 KiB).
      const n = 3000;
      for (let i = 0; i < n; i += 50) {
        const batch = await Promise.all(Array.from({ length: 50 }, () => fetch(`${served.url}/refresh`, { headers: { 'x-authid': authid } })));
        expect(batch.map((r) => r.status)).toEqual(Array(50).fill(200));
        await Promise.all(batch.map((r) => r.arrayBuffer()));
      }
      served.child.kill('SIGUSR1');
      const lines = () =>
        served
          .stderr()
          .split('\n')
          .filter((l) => l.includes(' request method=GET route=/refresh '));
      for (let i = 0; i < 1000 && lines().length < n; i++) await new Promise((r) => setTimeout(r, 10));
      const got = lines();
      expect(got.length).toBe(n);
      const whole = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info request method=GET route=\/refresh status=200 ms=[\d.]+ keyid=bk1[a-z2-7]{8}$/;
      expect(got.filter((l) => !whole.test(l))).toEqual([]);
      // In order: the times never go back.
      const times = got.map((l) => l.slice(0, 24));
      expect(times).toEqual([...times].sort());
    } finally {
      await served.stop();
    }
  });
});
