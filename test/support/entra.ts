/**
 * A local, real OpenID provider (oidc-provider) dressed up as Microsoft Entra
 * ID's v2.0 endpoints, so the broker can be exercised end to end without
 * mocking its OAuth client.
 *
 * Layout (base = `http://127.0.0.1:<port>`):
 *   {base}/{tenant}/oauth2/v2.0/authorize          (any tenant segment)
 *   {base}/{tenant}/oauth2/v2.0/token
 *   {base}/{tenant}/oauth2/v2.0/logout
 *   {base}/{tenant}/discovery/v2.0/keys
 *   {base}/{tenant}/v2.0/.well-known/openid-configuration
 *   {base}/interaction/{uid}                        (login page, plain HTML form)
 *
 * The issuer is `{base}/{tid}/v2.0`, like Entra's, regardless of the tenant
 * segment used in the request.
 *
 * Deliberate deviations from oidc-provider defaults, each to match Entra:
 *   - offline_access yields a refresh token without `prompt=consent`;
 *   - consent is granted automatically (the user only sees a login form);
 *   - refresh tokens rotate on every use, and replaying a used one revokes
 *     the whole grant (stricter than Entra, on purpose: it is the failure the
 *     broker must never provoke). With `reuseGraceMs` > 0, a rotated token
 *     presented within that many ms of its rotation is accepted once more
 *     (it rotates again, the grant survives; counted in `reuseWithinGrace`):
 *     a narrow model of Entra, which does not revoke old refresh tokens on
 *     use, for a client that died between sending a refresh and storing the
 *     answer; anything older, or a second replay, still revokes;
 *   - token endpoint errors carry `error_codes`, `trace_id`, `correlation_id`.
 */

export { CONSUMER_TENANT_ID, SUPPORTED_SCOPES, type Entra, type EntraOptions, type EntraStats, type LoginOptions, type TokenFailure } from './entra/config.ts';
export { startEntra } from './entra/server.ts';
