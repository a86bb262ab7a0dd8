// oidc-provider 9 ships no type declarations (and @types/oidc-provider stops at
// v8), so this declares only the slice of its API that the Entra fixture uses.
// Keep it narrow: anything not listed here is deliberately not relied upon.

declare module 'oidc-provider' {
  type IncomingMessage = import('node:http').IncomingMessage;
  type ServerResponse = import('node:http').ServerResponse;

  /** The koa context as oidc-provider hands it to middleware and hooks. */
  export interface KoaContext {
    req: IncomingMessage & { originalUrl?: string };
    res: ServerResponse;
    method: string;
    path: string;
    url: string;
    querystring: string;
    href: string;
    host: string;
    status: number;
    body: unknown;
    type: string;
    respond?: boolean;
    state: Record<string, unknown>;
    oidc?: OIDCContext;
    set(field: string, value: string): void;
    get(field: string): string;
    redirect(url: string): void;
  }

  export type Next = () => Promise<void>;
  export type Middleware = (ctx: KoaContext, next: Next) => Promise<void>;

  export interface OIDCContext {
    route?: string;
    params?: Record<string, string | undefined>;
    client?: Client;
    session?: { accountId?: string; grantIdFor(clientId: string): string | undefined };
    result?: InteractionResults;
  }

  export interface Client {
    clientId: string;
    redirectUriAllowed(redirectUri: string): boolean;
  }

  export interface AdapterPayload {
    [key: string]: unknown;
    grantId?: string;
    userCode?: string;
    uid?: string;
    consumed?: unknown;
  }

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export type AdapterConstructor = new (modelName: string) => Adapter;

  export interface AccountClaims {
    sub: string;
    [claim: string]: unknown;
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string): Promise<AccountClaims> | AccountClaims;
  }

  export interface Grant {
    accountId?: string;
    clientId?: string;
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }

  export interface GrantConstructor {
    new (properties: { accountId: string; clientId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  }

  export interface InteractionResults {
    login?: { accountId: string; remember?: boolean };
    consent?: { grantId?: string };
    error?: string;
    error_description?: string;
  }

  export interface InteractionDetails {
    uid: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, string | undefined>;
    session?: { accountId: string };
    grantId?: string;
  }

  /** The subset of the error object passed to `grant.error` listeners. */
  export interface ProviderError extends Error {
    error: string;
    error_description?: string;
    error_detail?: string;
    statusCode?: number;
  }

  export interface ErrorOut {
    error: string;
    error_description?: string;
    [key: string]: unknown;
  }

  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    redirect_uris: string[];
    grant_types?: string[];
    response_types?: string[];
    token_endpoint_auth_method?: string;
    application_type?: 'web' | 'native';
    client_name?: string;
  }

  type TtlFunction = (ctx: KoaContext | undefined, token: unknown, client: unknown) => number;

  export interface Configuration {
    adapter?: AdapterConstructor;
    clients?: ClientMetadata[];
    jwks?: { keys: object[] };
    cookies?: {
      keys?: string[];
      names?: Record<string, string>;
      long?: Record<string, unknown>;
      short?: Record<string, unknown>;
    };
    claims?: Record<string, string[] | null>;
    scopes?: string[];
    conformIdTokenClaims?: boolean;
    allowOmittingSingleRegisteredRedirectUri?: boolean;
    clientBasedCORS?: (ctx: KoaContext, origin: string, client: Client) => boolean;
    pkce?: { required?: (ctx: KoaContext, client: Client) => boolean };
    routes?: Record<string, string>;
    ttl?: Record<string, number | TtlFunction>;
    interactions?: { url?: (ctx: KoaContext, interaction: { uid: string }) => Promise<string> | string };
    findAccount?: (ctx: KoaContext, sub: string, token?: unknown) => Promise<Account | undefined>;
    loadExistingGrant?: (ctx: KoaContext) => Promise<Grant | undefined>;
    issueRefreshToken?: (
      ctx: KoaContext,
      client: Client & { grantTypeAllowed(type: string): boolean },
      code: { scopes: Set<string> },
    ) => Promise<boolean> | boolean;
    rotateRefreshToken?: boolean | ((ctx: KoaContext) => boolean | Promise<boolean>);
    expiresWithSession?: (ctx: KoaContext, code: unknown) => Promise<boolean> | boolean;
    renderError?: (ctx: KoaContext, out: ErrorOut, error: Error) => Promise<void> | void;
    features?: Record<string, Record<string, unknown>>;
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    readonly Grant: GrantConstructor;
    readonly Client: { prototype: Client };
    proxy: boolean;
    use(middleware: Middleware): this;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: 'grant.error', listener: (ctx: KoaContext, error: ProviderError) => void): this;
    on(event: 'server_error', listener: (ctx: KoaContext, error: Error) => void): this;
    on(event: 'error', listener: (error: Error & { code?: string; expose?: boolean; status?: number }) => void): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionResult(req: IncomingMessage, res: ServerResponse, result: InteractionResults, options?: { mergeWithLastSubmission?: boolean }): Promise<string>;
  }
}
