/**
 * The fixture: an HTTP server on loopback in front of oidc-provider, with
 * Entra's tenant routes, its authorization-request habits, its token-endpoint
 * error bodies, failure injection, and a close() that leaves nothing behind.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type OidcProvider from 'oidc-provider';
import type { Account, InteractionDetails, InteractionResults, KoaContext, Next } from 'oidc-provider';
import { type AccountInfo, accountInfo } from './accounts.ts';
import {
  CONSUMER_TENANT_ID,
  type Entra,
  type EntraOptions,
  GRAPH_RESOURCE_PREFIX,
  INTERACTION_ROUTE,
  ROUTES,
  SUPPORTED_SCOPES,
  TENANT_DISCOVERY,
  TENANT_ROUTE,
  type TokenFailure,
} from './config.ts';
import { entraErrorBody, isErrorBody } from './errors.ts';
import { browserLogin } from './login.ts';
import { getSigningJwk, loadProvider } from './oidc.ts';
import { escapeHtml, loginPage, page } from './pages.ts';
import { MemoryStore } from './rotation.ts';
import { freshStats } from './stats.ts';

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

export async function startEntra(opts: EntraOptions = {}): Promise<Entra> {
  const Provider = await loadProvider();

  const host = opts.host ?? '127.0.0.1';
  const clientId = opts.clientId ?? randomUUID();
  // Entra secrets look like `abc8Q~...`; the shape doesn't matter, only that it is opaque.
  const clientSecret = opts.clientSecret ?? `${randomBytes(3).toString('hex')}8Q~${randomBytes(27).toString('base64url')}`;
  const tid = opts.tid ?? CONSUMER_TENANT_ID;
  let accessTokenTtl = opts.accessTokenTtl ?? 3600;
  let tokenDelayMs = 0;
  let redirectUris = new Set(opts.redirectUris ?? []);
  const acceptRedirectUri = opts.acceptRedirectUri;
  let stats = freshStats();
  const issued = { accessTokens: [] as string[], refreshTokens: [] as string[], idTokens: [] as string[] };
  let grantErrors: string[] = [];
  const failures: TokenFailure[] = [];
  const store = new MemoryStore();
  store.reuseGraceMs = opts.reuseGraceMs ?? 0;
  store.onReuseWithinGrace = () => {
    stats.reuseWithinGrace += 1;
  };
  const accounts = new Map<string, AccountInfo>();
  /** Set by rotateClientSecret; translated to the registered secret before oidc-provider sees it. */
  let rotatedSecret: string | undefined;

  // Everything that could keep the process alive after close(): sockets,
  // pending delays and deliberately hung requests.
  const sockets = new Set<Socket>();
  const pending = new Set<{ timer: ReturnType<typeof setTimeout> | undefined; resolve: () => void }>();
  let closed = false;

  /**
   * Resolves after `ms`, or forever-ish (`ms` undefined) — but always as soon
   * as the fixture closes, so nothing outlives close().
   */
  function pause(ms: number | undefined): Promise<void> {
    if (closed || ms === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: undefined as ReturnType<typeof setTimeout> | undefined,
        resolve: (): void => {
          if (entry.timer) clearTimeout(entry.timer);
          pending.delete(entry);
          resolve();
        },
      };
      if (ms !== undefined) entry.timer = setTimeout(entry.resolve, ms);
      pending.add(entry);
    });
  }
  const sleep = (ms: number | undefined): Promise<void> => pause(ms ?? 0);
  const untilClosed = (): Promise<void> => pause(undefined);

  function accountFor(username: string): AccountInfo {
    const account = accountInfo(username, tid, clientId);
    accounts.set(account.sub, account);
    return account;
  }

  const server: Server = createServer();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // The issuer embeds the port, so the provider can only be built once we listen.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const authority = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const issuer = `${authority}/${tid}/v2.0`;

  // Built in a helper so a configuration error can't leave the port bound.
  let provider: OidcProvider;
  try {
    provider = createProvider();
  } catch (error) {
    server.close();
    throw error;
  }

  function createProvider(): OidcProvider {
    return new Provider(issuer, {
      adapter: store.adapter(),
      jwks: { keys: [getSigningJwk()] },
      // No cookies.keys on purpose: signing would pull in keygrip/tsscmp, which
      // trips a crypto.pseudoRandomBytes deprecation warning under Bun, and the
      // cookie values are unguessable ids anyway.
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          // oidc-provider insists on at least one; the live list below is what is enforced.
          redirect_uris: opts.redirectUris?.length ? opts.redirectUris : ['http://127.0.0.1/logged-in'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_post',
          application_type: 'web',
          client_name: 'Broker (test)',
        },
      ],
      scopes: [...SUPPORTED_SCOPES],
      // Entra puts profile claims in the id_token even though an access token is
      // issued too; oidc-provider's conformant mode would move them to userinfo.
      conformIdTokenClaims: false,
      claims: {
        openid: ['sub', 'tid', 'oid', 'ver'],
        profile: ['name', 'preferred_username'],
        email: ['email'],
      },
      // Entra requires redirect_uri at the token endpoint.
      allowOmittingSingleRegisteredRedirectUri: false,
      pkce: { required: () => true },
      routes: { ...ROUTES },
      rotateRefreshToken: true,
      ttl: {
        AccessToken: () => accessTokenTtl,
        AuthorizationCode: 600,
        IdToken: 3600,
        RefreshToken: 90 * 24 * 3600,
        // Longer than a refresh token, so rotation never outlives its grant.
        Grant: 365 * 24 * 3600,
        Interaction: 3600,
        Session: 14 * 24 * 3600,
      },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      findAccount: async (_ctx, sub): Promise<Account | undefined> => {
        const account = accounts.get(sub);
        if (!account) return undefined;
        return {
          accountId: sub,
          claims: () => ({
            sub,
            tid,
            oid: account.oid,
            ver: '2.0',
            name: account.name,
            preferred_username: account.preferredUsername,
            email: account.preferredUsername,
          }),
        };
      },
      // A confidential client talking server-to-server has no business sending
      // Origin; Entra rejects cross-origin redemption for web apps too.
      clientBasedCORS: () => false,
      renderError: (ctx, out) => {
        if (ctx.oidc?.route === 'token') {
          // Entra's token endpoint answers JSON whatever the Accept header says.
          ctx.type = 'application/json';
          ctx.body = out;
          return;
        }
        ctx.type = 'html';
        ctx.body = page(
          'Sign in error',
          `<h1>Something went wrong</h1><p id="error">${escapeHtml(out.error)}</p>` +
            `<p id="error_description">${escapeHtml(out.error_description ?? '')}</p>`,
        );
      },
      features: {
        devInteractions: { enabled: false },
        // Without resource indicators, access tokens are opaque and carry the
        // granted (Graph-style) scopes, which is all the broker can observe anyway.
        resourceIndicators: { enabled: false },
        dPoP: { enabled: false },
        pushedAuthorizationRequests: { enabled: false },
        userinfo: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: (ctx: KoaContext, form: string): void => {
            ctx.type = 'html';
            ctx.body = page(
              'Sign out',
              `<h1>Sign out?</h1>${form}<div class="buttons"><button id="submit" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button></div>`,
            );
          },
          postLogoutSuccessSource: (ctx: KoaContext): void => {
            ctx.type = 'html';
            ctx.body = page('Signed out', '<h1>You signed out of your account</h1>');
          },
        },
      },
    });
  }

  // Redirect URIs are checked against live state so tests can register the
  // broker's callback after they learn its port.
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(uri: string): boolean {
    return redirectUris.has(uri) || (acceptRedirectUri?.(uri) ?? false);
  };

  provider.on('grant.error', (ctx, error) => {
    ctx.state.errorDetail = error.error_detail;
    grantErrors.push(String(error.error_detail ?? (error as { cause?: Error }).cause?.message ?? error.error));
    // oidc-provider has already revoked the grant by the time this fires.
    if (error.error_detail === 'refresh token already used') stats.reuseDetected += 1;
  });
  provider.on('server_error', (_ctx, error) => {
    // A 500 here is a fixture bug, never an expected test outcome: be loud.
    console.error('entra fixture: oidc-provider server_error', error);
  });

  // Koa prints every stream error unless someone listens. Clients hanging up
  // mid-request (timeout tests do it on purpose) are expected; the rest is
  // filtered the way koa's default handler would.
  provider.on('error', (error) => {
    if (error.expose || error.status === 404) return;
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || error.code === 'ECONNABORTED') return;
    console.error('entra fixture: unhandled error', error);
  });

  async function finishInteraction(ctx: KoaContext, result: InteractionResults): Promise<void> {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.redirect(redirectTo);
    ctx.status = 303;
  }

  /** Grants everything requested: the fixture has no consent screen, like a pre-consented app. */
  async function grantAll(details: InteractionDetails, accountId: string): Promise<string> {
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant || grant.accountId !== accountId) {
      grant = new provider.Grant({ accountId, clientId: details.params.client_id ?? clientId });
    }
    if (details.params.scope) grant.addOIDCScope(details.params.scope);
    return grant.save();
  }

  async function handleInteraction(ctx: KoaContext, action: string | undefined): Promise<void> {
    ctx.set('Cache-Control', 'no-store');
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (action === 'abort' && ctx.method === 'POST') {
        await finishInteraction(ctx, {
          error: 'access_denied',
          error_description: 'AADSTS65004: User declined to consent to access the app.',
        });
      } else if (action === 'login' && ctx.method === 'POST') {
        const form = new URLSearchParams(await readBody(ctx.req));
        const account = accountFor(form.get('username') ?? '');
        const grantId = await grantAll(details, account.sub);
        await finishInteraction(ctx, { login: { accountId: account.sub }, consent: { grantId } });
      } else if (action === undefined && ctx.method === 'GET') {
        if (details.prompt.name === 'login' || !details.session) {
          ctx.type = 'html';
          ctx.body = loginPage(details.uid, details.params.login_hint);
        } else {
          // Already signed in; only consent is pending, and it is implied.
          const grantId = await grantAll(details, details.session.accountId);
          await finishInteraction(ctx, { consent: { grantId } });
        }
      } else {
        ctx.status = 405;
        ctx.body = 'method not allowed';
      }
    } catch (error) {
      // Typically an expired or foreign interaction cookie; show it rather
      // than letting koa log it.
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Sign in error', `<h1>Sign in failed</h1><p id="error">${escapeHtml(String(error))}</p>`);
    }
  }

  /**
   * Entra-isms on the authorization request, applied before oidc-provider sees it.
   */
  function adjustAuthorizationQuery(ctx: KoaContext): void {
    const query = new URLSearchParams(ctx.querystring);
    const scopes = (query.get('scope') ?? '')
      .split(' ')
      .filter(Boolean)
      .map((scope) => (scope.startsWith(GRAPH_RESOURCE_PREFIX) ? scope.slice(GRAPH_RESOURCE_PREFIX.length) : scope));
    const prompts = new Set((query.get('prompt') ?? '').split(' ').filter(Boolean));
    // Entra's account picker; the closest oidc-provider knows is a fresh login.
    if (prompts.delete('select_account')) prompts.add('login');
    // Per OpenID Connect, oidc-provider drops offline_access unless
    // prompt=consent is present; Entra issues a refresh token regardless.
    // Consent is auto-granted, so forcing the prompt costs only a redirect.
    // (prompt=none cannot carry consent, so it keeps OIDC semantics.)
    if (scopes.includes('offline_access') && !prompts.has('none')) prompts.add('consent');
    if (scopes.length) query.set('scope', scopes.join(' '));
    if (prompts.size) query.set('prompt', [...prompts].join(' '));
    ctx.querystring = query.toString();
  }

  async function handleToken(ctx: KoaContext, next: Next): Promise<void> {
    stats.tokenRequests += 1;
    const failure = failures.shift();

    if (failure && (failure.status !== undefined || failure.hang)) {
      // The body is read only to count the grant type; the provider never sees it.
      const grantType = new URLSearchParams(await readBody(ctx.req)).get('grant_type');
      if (grantType) stats.byGrant[grantType] = (stats.byGrant[grantType] ?? 0) + 1;
      if (failure.hang) {
        ctx.respond = false;
        await untilClosed();
        return;
      }
      await sleep(failure.delayMs);
      ctx.status = failure.status ?? 500;
      for (const [name, value] of Object.entries(failure.headers ?? {})) ctx.set(name, value);
      if (failure.body !== undefined) {
        if (typeof failure.body === 'string') {
          ctx.body = failure.body;
          if (!failure.headers || !Object.keys(failure.headers).some((h) => h.toLowerCase() === 'content-type')) {
            ctx.type = /^\s*[{[]/.test(failure.body) ? 'application/json' : 'text/plain';
          }
        } else {
          ctx.body = failure.body;
        }
      }
      return;
    }

    await sleep((failure?.delayMs ?? 0) + tokenDelayMs);
    if (rotatedSecret !== undefined) {
      const form = new URLSearchParams(await readBody(ctx.req));
      if (form.get('client_secret') !== rotatedSecret) {
        const grantType = form.get('grant_type');
        if (grantType) stats.byGrant[grantType] = (stats.byGrant[grantType] ?? 0) + 1;
        ctx.status = 401;
        ctx.body = { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] };
        return;
      }
      form.set('client_secret', clientSecret);
      // oidc-provider takes an already-read body from req.body.
      (ctx.req as IncomingMessage & { body?: string }).body = form.toString();
    }
    await next();

    const grantType = ctx.oidc?.params?.grant_type;
    if (grantType) stats.byGrant[grantType] = (stats.byGrant[grantType] ?? 0) + 1;

    if (ctx.status >= 400 && isErrorBody(ctx.body)) {
      const detail = typeof ctx.state.errorDetail === 'string' ? ctx.state.errorDetail : undefined;
      ctx.body = entraErrorBody(ctx.body, detail);
    } else if (ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) {
      const body = ctx.body as Record<string, unknown>;
      if (typeof body.expires_in === 'number') body.ext_expires_in = body.expires_in;
      if (typeof body.access_token === 'string') issued.accessTokens.push(body.access_token);
      if (typeof body.refresh_token === 'string') issued.refreshTokens.push(body.refresh_token);
      if (typeof body.id_token === 'string') issued.idTokens.push(body.id_token);
    }
  }

  provider.use(async (ctx, next) => {
    const interaction = INTERACTION_ROUTE.exec(ctx.path);
    if (interaction) {
      await handleInteraction(ctx, interaction[2]);
      return;
    }

    // Strip the tenant segment, and record the original URL: oidc-provider
    // derives its mount path from `req.originalUrl`, so the URLs it generates
    // (interaction resume, discovery) keep the tenant the client used.
    const tenantRoute = TENANT_ROUTE.exec(ctx.path);
    const tenantDiscovery = tenantRoute ? null : TENANT_DISCOVERY.exec(ctx.path);
    const tenant = tenantRoute?.[1] ?? tenantDiscovery?.[1];
    const rest = tenantRoute?.[2] ?? (tenantDiscovery ? '/.well-known/openid-configuration' : undefined);
    if (rest !== undefined) ctx.url = `${rest}${ctx.querystring ? `?${ctx.querystring}` : ''}`;

    if (ctx.path === ROUTES.authorization && ctx.method === 'GET') adjustAuthorizationQuery(ctx);

    // Last, because oidc-provider finds the mount path by locating the
    // (final, rewritten) request URL inside the original one.
    if (tenant !== undefined) ctx.req.originalUrl = `/${tenant}${ctx.url}`;

    if (ctx.path === ROUTES.token && ctx.method === 'POST') {
      await handleToken(ctx, next);
      return;
    }

    await next();
  });

  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    callback(req, res);
  });

  return {
    authority,
    issuer,
    clientId,
    clientSecret,
    tid,
    tenant: 'consumers',
    port,
    authorizeUrl: (tenant = 'consumers') => `${authority}/${tenant}${ROUTES.authorization}`,
    tokenUrl: (tenant = 'consumers') => `${authority}/${tenant}${ROUTES.token}`,
    login: (authorizeUrl, loginOpts) => browserLogin(authorizeUrl, loginOpts),
    stats: () => ({ ...stats, byGrant: { ...stats.byGrant } }),
    resetStats: () => {
      stats = freshStats();
      grantErrors = [];
    },
    issued: () => ({ accessTokens: [...issued.accessTokens], refreshTokens: [...issued.refreshTokens], idTokens: [...issued.idTokens] }),
    grantErrors: () => [...grantErrors],
    failNext: (n, failure) => {
      // n = 0 clears what is still queued, so a test cannot leave failures behind for the next one.
      if (n === 0) failures.length = 0;
      for (let i = 0; i < n; i += 1) failures.push({ ...failure });
    },
    setTokenDelay: (ms) => {
      tokenDelayMs = ms;
    },
    setAccessTokenTtl: (seconds) => {
      accessTokenTtl = seconds;
    },
    setReuseGraceMs: (ms) => {
      store.reuseGraceMs = ms;
    },
    setRedirectUris: (uris) => {
      redirectUris = new Set(uris);
    },
    addRedirectUri: (uri) => {
      redirectUris.add(uri);
    },
    rotateClientSecret: (secret) => {
      rotatedSecret = secret;
    },
    revokeAllGrants: () => {
      for (const model of ['Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode']) store.model(model).clear();
    },
    account: (username) => {
      const { sub, oid, preferredUsername } = accountFor(username);
      return { sub, oid, preferredUsername };
    },
    close: async () => {
      if (closed) return;
      closed = true;
      for (const entry of [...pending]) entry.resolve();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await done;
    },
  };
}
