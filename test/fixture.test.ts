// Proves the Entra ID fixture behaves like the real thing where the broker can
// tell the difference, using nothing but fetch: if these pass, a broker test
// failing against the fixture is the broker's fault, not the fixture's.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSUMER_TENANT_ID, startEntra, type Entra } from './support/entra.ts';

const REDIRECT_URI = 'http://127.0.0.1:8080/logged-in';
const SCOPE = 'offline_access Files.ReadWrite openid profile';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface TokenResponse {
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  token_type?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
  error_codes?: number[];
}

interface SignIn {
  code: string;
  state: string;
  nonce: string;
  verifier: string;
}

let entra: Entra;

beforeAll(async () => {
  entra = await startEntra();
  // Registered after start, as broker tests must do once they know their port.
  entra.setRedirectUris([REDIRECT_URI]);
});

afterAll(async () => {
  await entra.close();
});

function authorizeUrl(params: { challenge?: string; state: string; nonce: string; tenant?: string; extra?: Record<string, string> }): string {
  const url = new URL(entra.authorizeUrl(params.tenant));
  url.search = new URLSearchParams({
    client_id: entra.clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    state: params.state,
    nonce: params.nonce,
    ...(params.challenge ? { code_challenge: params.challenge, code_challenge_method: 'S256' } : {}),
    ...params.extra,
  }).toString();
  return url.href;
}

async function signIn(username = 'alice', tenant?: string): Promise<SignIn> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('hex');
  const nonce = randomBytes(8).toString('hex');
  const callback = new URL(await entra.login(authorizeUrl({ challenge, state, nonce, tenant }), { username }));
  expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT_URI);
  expect(callback.searchParams.get('error')).toBeNull();
  expect(callback.searchParams.get('state')).toBe(state);
  const code = callback.searchParams.get('code');
  expect(code).toBeTruthy();
  return { code: code ?? '', state, nonce, verifier };
}

async function tokenRequest(params: Record<string, string>, tenant?: string): Promise<{ status: number; body: TokenResponse }> {
  const res = await fetch(entra.tokenUrl(tenant), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ client_id: entra.clientId, client_secret: entra.clientSecret, ...params }),
  });
  return { status: res.status, body: (await res.json()) as TokenResponse };
}

function redeem(signIn: SignIn, overrides: Record<string, string> = {}): Promise<{ status: number; body: TokenResponse }> {
  return tokenRequest({
    grant_type: 'authorization_code',
    code: signIn.code,
    redirect_uri: REDIRECT_URI,
    code_verifier: signIn.verifier,
    ...overrides,
  });
}

function refresh(refreshToken: string | undefined, tenant?: string): Promise<{ status: number; body: TokenResponse }> {
  return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken ?? '', scope: SCOPE }, tenant);
}

function jwtClaims(jwt: string | undefined): Record<string, unknown> {
  const payload = jwt?.split('.')[1];
  if (!payload) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('authorization code flow', () => {
  it('login() returns the callback URL with code and state', async () => {
    await signIn();
  });

  it('redeems the code for access, refresh and Entra-shaped id tokens', async () => {
    const login = await signIn('alice');
    const { status, body } = await redeem(login);
    expect(status).toBe(200);
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBe(3600);
    expect(body.access_token).toBeTruthy();
    expect(body.refresh_token).toBeTruthy();
    expect(body.scope?.split(' ')).toEqual(expect.arrayContaining(['Files.ReadWrite', 'offline_access', 'openid']));

    const claims = jwtClaims(body.id_token);
    expect(claims).toMatchObject({
      aud: entra.clientId,
      iss: `${entra.authority}/${CONSUMER_TENANT_ID}/v2.0`,
      tid: CONSUMER_TENANT_ID,
      name: 'alice',
      preferred_username: 'alice@outlook.com',
      nonce: login.nonce,
    });
    expect(claims.oid).toMatch(GUID);
    expect(claims.sub).toEqual(expect.any(String));
    expect(entra.issuer).toBe(claims.iss);
  });

  it('keeps oid stable per username and distinct between users', async () => {
    const first = jwtClaims((await redeem(await signIn('carol'))).body.id_token);
    const again = jwtClaims((await redeem(await signIn('carol'))).body.id_token);
    const other = jwtClaims((await redeem(await signIn('dave'))).body.id_token);
    expect(again.oid).toBe(first.oid);
    expect(again.sub).toBe(first.sub);
    expect(other.oid).not.toBe(first.oid);
    expect(entra.account('carol').oid).toBe(first.oid);
  });

  it('accepts any tenant segment and Entra prompt values', async () => {
    for (const tenant of ['common', 'organizations', CONSUMER_TENANT_ID]) {
      const login = await signIn('erin', tenant);
      const res = await tokenRequest({ grant_type: 'authorization_code', code: login.code, redirect_uri: REDIRECT_URI, code_verifier: login.verifier }, tenant);
      expect(res.status).toBe(200);
      expect(res.body.refresh_token).toBeTruthy();
    }
    const callback = await entra.login(authorizeUrl({ challenge: 'x'.repeat(43), state: 's', nonce: 'n', extra: { prompt: 'select_account' } }));
    expect(new URL(callback).searchParams.get('code')).toBeTruthy();
  });

  it('requires PKCE at the authorization endpoint', async () => {
    const callback = new URL(await entra.login(authorizeUrl({ state: 'nopkce', nonce: 'n' })));
    expect(callback.searchParams.get('error')).toBe('invalid_request');
    expect(callback.searchParams.get('state')).toBe('nopkce');
  });

  it('returns the access_denied callback when the user cancels', async () => {
    const callback = new URL(await entra.login(authorizeUrl({ challenge: 'y'.repeat(43), state: 'c', nonce: 'n' }), { cancel: true }));
    expect(callback.searchParams.get('error')).toBe('access_denied');
  });

  it('refuses an unregistered redirect_uri without redirecting to it', async () => {
    const url = new URL(authorizeUrl({ challenge: 'z'.repeat(43), state: 's', nonce: 'n' }));
    url.searchParams.set('redirect_uri', 'http://127.0.0.1:9/elsewhere');
    await expect(entra.login(url.href)).rejects.toThrow(/HTTP 400/);
  });

  it('rejects a code redemption without code_verifier', async () => {
    const { code } = await signIn();
    const { status, body } = await tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_grant');
  });

  it('rejects a wrong client_secret with 401 invalid_client', async () => {
    const { status, body } = await redeem(await signIn(), { client_secret: 'wrong' });
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
    expect(body.error_codes).toEqual([7000215]);
  });
});

describe('refresh tokens', () => {
  it('rotate on every use, and the new one works', async () => {
    const first = (await redeem(await signIn())).body;
    const second = await refresh(first.refresh_token);
    expect(second.status).toBe(200);
    expect(second.body.refresh_token).toBeTruthy();
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    expect(second.body.access_token).not.toBe(first.access_token);

    const third = await refresh(second.body.refresh_token);
    expect(third.status).toBe(200);
    expect(third.body.refresh_token).not.toBe(second.body.refresh_token);
  });

  it('replaying a used one fails and revokes the whole grant', async () => {
    const first = (await redeem(await signIn())).body;
    const second = (await refresh(first.refresh_token)).body;
    const before = entra.stats().reuseDetected;

    const replay = await refresh(first.refresh_token);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    expect(replay.body.error_codes).toEqual([70000]);
    expect(entra.stats().reuseDetected).toBe(before + 1);

    // The legitimate newest token dies with the grant.
    const newest = await refresh(second.refresh_token);
    expect(newest.status).toBe(400);
    expect(newest.body.error).toBe('invalid_grant');
  });

  it('die when the user withdraws consent', async () => {
    const tokens = (await redeem(await signIn())).body;
    entra.revokeAllGrants();
    const res = await refresh(tokens.refresh_token);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });
});

describe('refresh-token reuse grace (reuseGraceMs)', () => {
  it('is off by default: an immediate replay still revokes the grant', async () => {
    const first = (await redeem(await signIn())).body;
    const second = (await refresh(first.refresh_token)).body;
    const before = entra.stats();
    const replay = await refresh(first.refresh_token);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    expect(entra.stats().reuseDetected).toBe(before.reuseDetected + 1);
    expect(entra.stats().reuseWithinGrace).toBe(before.reuseWithinGrace);
    expect((await refresh(second.refresh_token)).status).toBe(400);
  });

  it('within the grace, a rotated token is accepted once more, rotates again, and the grant survives', async () => {
    entra.setReuseGraceMs(5000);
    try {
      const first = (await redeem(await signIn())).body;
      const second = (await refresh(first.refresh_token)).body;
      const before = entra.stats();
      const replay = await refresh(first.refresh_token);
      expect(replay.status).toBe(200);
      expect(replay.body.refresh_token).toBeTruthy();
      expect(replay.body.refresh_token).not.toBe(first.refresh_token);
      expect(replay.body.refresh_token).not.toBe(second.refresh_token);
      expect(entra.stats().reuseWithinGrace).toBe(before.reuseWithinGrace + 1);
      expect(entra.stats().reuseDetected).toBe(before.reuseDetected);
      // Both descendants work: nothing was revoked.
      expect((await refresh(replay.body.refresh_token)).status).toBe(200);
      const third = await refresh(second.refresh_token);
      expect(third.status).toBe(200);
      // The grace is for one replay only: a second one revokes the grant.
      const again = await refresh(first.refresh_token);
      expect(again.status).toBe(400);
      expect(entra.stats().reuseDetected).toBe(before.reuseDetected + 1);
      expect((await refresh(third.body.refresh_token)).status).toBe(400);
    } finally {
      entra.setReuseGraceMs(0);
    }
  });

  it('two concurrent replays within the grace: only one is accepted', async () => {
    entra.setReuseGraceMs(5000);
    try {
      const first = (await redeem(await signIn())).body;
      await refresh(first.refresh_token);
      const before = entra.stats();
      const both = await Promise.all([refresh(first.refresh_token), refresh(first.refresh_token)]);
      expect(both.map((r) => r.status).sort()).toEqual([200, 400]);
      expect(entra.stats().reuseWithinGrace).toBe(before.reuseWithinGrace + 1);
      expect(entra.stats().reuseDetected).toBe(before.reuseDetected + 1);
    } finally {
      entra.setReuseGraceMs(0);
    }
  });

  it('after the grace, a replay revokes the grant as before (option given at start)', async () => {
    const graced = await startEntra({ redirectUris: [REDIRECT_URI], reuseGraceMs: 150 });
    try {
      const post = async (params: Record<string, string>) => {
        const res = await fetch(graced.tokenUrl(), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ client_id: graced.clientId, client_secret: graced.clientSecret, ...params }),
        });
        return { status: res.status, body: (await res.json()) as TokenResponse };
      };
      const verifier = randomBytes(32).toString('base64url');
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      const url = new URL(graced.authorizeUrl());
      url.search = new URLSearchParams({
        client_id: graced.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: SCOPE,
        state: 's',
        nonce: 'n',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }).toString();
      const code = new URL(await graced.login(url.href)).searchParams.get('code')!;
      const first = (await post({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier })).body;
      const second = (await post({ grant_type: 'refresh_token', refresh_token: first.refresh_token!, scope: SCOPE })).body;
      expect(second.refresh_token).toBeTruthy();
      await new Promise((r) => setTimeout(r, 400));
      const replay = await post({ grant_type: 'refresh_token', refresh_token: first.refresh_token!, scope: SCOPE });
      expect(replay.status).toBe(400);
      expect(replay.body.error).toBe('invalid_grant');
      expect(graced.stats()).toMatchObject({ reuseDetected: 1, reuseWithinGrace: 0 });
      const newest = await post({ grant_type: 'refresh_token', refresh_token: second.refresh_token!, scope: SCOPE });
      expect(newest.status).toBe(400);
    } finally {
      await graced.close();
    }
  });
});

describe('observation and failure injection', () => {
  it('counts token requests by grant type', async () => {
    const login = await signIn();
    entra.resetStats();
    const tokens = (await redeem(login)).body;
    await refresh(tokens.refresh_token);
    await refresh(tokens.refresh_token); // reuse
    expect(entra.stats()).toEqual({
      tokenRequests: 3,
      byGrant: { authorization_code: 1, refresh_token: 2 },
      reuseDetected: 1,
      reuseWithinGrace: 0,
    });
  });

  it('failNext serves canned answers to the next n requests only', async () => {
    const tokens = (await redeem(await signIn())).body;
    entra.resetStats();
    entra.failNext(2, { status: 503, body: { error: 'temporarily_unavailable' }, headers: { 'retry-after': '1' } });

    for (let i = 0; i < 2; i += 1) {
      const res = await fetch(entra.tokenUrl(), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '' }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual({ error: 'temporarily_unavailable' });
    }

    // The canned answers never reached the provider, so the token is unspent.
    const real = await refresh(tokens.refresh_token);
    expect(real.status).toBe(200);
    expect(entra.stats()).toMatchObject({ tokenRequests: 3, byGrant: { refresh_token: 3 } });

    entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_codes: [700082] } });
    const expired = await refresh(real.body.refresh_token);
    expect(expired).toEqual({ status: 400, body: { error: 'invalid_grant', error_codes: [700082] } });
  });

  it('failNext can delay, or hang until the client gives up', async () => {
    entra.failNext(1, { status: 503, body: '{"error":"temporarily_unavailable"}', delayMs: 150 });
    const started = Date.now();
    const delayed = await tokenRequest({ grant_type: 'refresh_token', refresh_token: 'x' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(delayed).toEqual({ status: 503, body: { error: 'temporarily_unavailable' } });

    entra.failNext(1, { hang: true });
    const hung = fetch(entra.tokenUrl(), { method: 'POST', body: 'grant_type=refresh_token', signal: AbortSignal.timeout(200) });
    await expect(hung).rejects.toThrow();
  });

  it('setTokenDelay delays real responses', async () => {
    const login = await signIn();
    entra.setTokenDelay(150);
    try {
      const started = Date.now();
      const { status } = await redeem(login);
      expect(status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    } finally {
      entra.setTokenDelay(0);
    }
  });

  it('setAccessTokenTtl changes expires_in', async () => {
    entra.setAccessTokenTtl(120);
    try {
      const tokens = (await redeem(await signIn())).body;
      expect(tokens.expires_in).toBe(120);
      entra.setAccessTokenTtl(7);
      expect((await refresh(tokens.refresh_token)).body.expires_in).toBe(7);
    } finally {
      entra.setAccessTokenTtl(3600);
    }
  });
});

describe('lifecycle', () => {
  it('close() releases the port and any hung request', async () => {
    const other = await startEntra({ redirectUris: [REDIRECT_URI] });
    other.failNext(1, { hang: true });
    const hung = fetch(other.tokenUrl(), { method: 'POST', body: 'grant_type=refresh_token' });
    // Give the request time to arrive before closing under it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await other.close();
    await expect(hung).rejects.toThrow();
    await expect(fetch(`${other.authority}/consumers/v2.0/.well-known/openid-configuration`)).rejects.toThrow();
  });

  it('runs standalone, prints one JSON line and exits 0 on SIGTERM', async () => {
    const script = fileURLToPath(new URL('./support/entra-server.ts', import.meta.url));
    const child = spawn(process.execPath, [script, '--port', '0', '--redirect-uri', REDIRECT_URI], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    try {
      const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const lines = createInterface({ input: child.stdout });
        lines.once('line', (line) => {
          lines.close();
          try {
            resolve(JSON.parse(line) as Record<string, unknown>);
          } catch (error) {
            reject(error);
          }
        });
        child.once('exit', (code) => reject(new Error(`entra-server exited early (${code}): ${stderr}`)));
      });
      expect(info).toEqual({
        authority: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
        clientId: expect.stringMatching(GUID),
        clientSecret: expect.any(String),
        tenant: 'consumers',
      });
      const discovery = await fetch(`${String(info.authority)}/consumers/v2.0/.well-known/openid-configuration`);
      expect(((await discovery.json()) as { token_endpoint?: string }).token_endpoint).toBe(`${String(info.authority)}/consumers/oauth2/v2.0/token`);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });
});
