/**
 * What the broker counts for /metrics, in-process: the outcome of every /refresh.
 * (The /metrics listener itself, through the binary: operations.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.ts';
import { expireCachedToken, PUBLIC_URL } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';

// One attempt per refresh (no retries within the budget): keeps the outage cases fast.
const h = useHarness({ config: { upstreamTimeoutMs: 1000, upstreamBudgetMs: 600 } });

// Found by mutation testing.
describe('broker_refresh_total outcomes', () => {
  it('cache_hit, refreshed, stale_served, login_required, app_misconfigured, upstream_error and rejected are told apart', async () => {
    const outcomes: string[] = [];
    const app = createApp({ broker: h.broker, version: 'test', now: () => Date.now() + h.clock.offsetMs, onRefresh: (o) => outcomes.push(o) });
    const refresh = async (authid: string) => (await app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': authid } }))).status;
    const last = () => outcomes[outcomes.length - 1];

    let c = await h.connect({ username: 'gaps-metrics-1' });
    expect(await refresh(c.authid)).toBe(200);
    expect(last()).toBe('cache_hit');
    expireCachedToken(h);
    expect(await refresh(c.authid)).toBe(200);
    expect(last()).toBe('refreshed');

    // Two minutes left: a refresh is due; Microsoft fails; the still-valid token is served.
    c = await h.connect({ username: 'gaps-metrics-2' });
    h.clock.offsetMs = 3600_000 - 120_000;
    h.entra.failNext(1, { status: 503, body: { error: 'temporarily_unavailable', error_codes: [90000] } });
    expect(await refresh(c.authid)).toBe(200);
    expect(last()).toBe('stale_served');

    c = await h.connect({ username: 'gaps-metrics-3' });
    expireCachedToken(h);
    h.entra.failNext(1, { status: 503, body: { error: 'temporarily_unavailable', error_codes: [90000] } });
    expect(await refresh(c.authid)).toBe(502);
    expect(last()).toBe('upstream_error');
    h.entra.failNext(1, { status: 401, body: { error: 'invalid_client', error_codes: [7000222] } });
    expect(await refresh(c.authid)).toBe(502);
    expect(last()).toBe('app_misconfigured');
    h.entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_codes: [70008] } });
    expect(await refresh(c.authid)).toBe(400);
    expect(last()).toBe('login_required');

    expect(await refresh('not-an-authid')).toBe(400);
    expect(last()).toBe('rejected');
    expect(outcomes).toEqual(['cache_hit', 'refreshed', 'stale_served', 'upstream_error', 'app_misconfigured', 'login_required', 'rejected']);
    h.clock.offsetMs = 0;
  });
});
