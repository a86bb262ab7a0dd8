/**
 * Duplicati's OAuth client, reduced to what it does on the wire
 * (OAuthHelperHttpClient.GetAccessTokenAsync, see docs/duplicati-client.md §2–§3):
 * GET <oauth-url> with X-AuthID and a "Duplicati v…" user agent; a 4xx is tried
 * twice, anything else six times with back-off 1, 2, 4, 8, 16 (seconds there,
 * `backoffUnitMs` here); a 503 with an X-Reason stops at once; the token is
 * used until `expires - 30` seconds from now.
 */
export interface DuplicatiResult {
  accessToken: string;
  /** When Duplicati would fetch a new one. */
  validUntil: number;
  attempts: number;
  body: Record<string, unknown>;
}

export class DuplicatiError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

export function loginUrl(oauthUrl: string, module: string): string {
  const u = new URL(oauthUrl);
  // AuthIdOptionsHelper.GetOAuthLoginUrl: origin only, path dropped, no "/" before "?".
  return `${u.origin}?type=${module}`;
}

export async function duplicatiGetToken(
  oauthUrl: string,
  authid: string,
  opts: { module?: string; backoffUnitMs?: number; version?: string } = {},
): Promise<DuplicatiResult> {
  const module = opts.module ?? 'onedrivev2';
  let attempts = 0;
  let lastStatus: number | undefined;
  let lastReason: string | null = null;
  for (;;) {
    attempts++;
    let max = 6;
    try {
      const res = await fetch(oauthUrl, {
        headers: { 'X-AuthID': authid, 'User-Agent': `Duplicati v${opts.version ?? '2.2.0.0'}` },
        signal: AbortSignal.timeout(25_000),
      });
      lastStatus = res.status;
      lastReason = res.headers.get('x-reason');
      if (res.ok) {
        const body = (await res.json()) as Record<string, unknown>;
        if (typeof body.access_token !== 'string') throw new DuplicatiError('no access_token', attempts, res.status);
        // Newtonsoft reads `expires` into an int; anything else fails deserialisation.
        if (!Number.isInteger(body.expires)) throw new DuplicatiError('expires is not an integer', attempts, res.status);
        return { accessToken: body.access_token, validUntil: Date.now() + ((body.expires as number) - 30) * 1000, attempts, body };
      }
      await res.body?.cancel();
      if (res.status === 503 && lastReason) {
        if (lastReason === 'ServiceUnavailable') throw new DuplicatiError('The OAuth service is currently over quota. Try again in a few hours', attempts, 503);
        throw new DuplicatiError(failed(lastReason, oauthUrl, module), attempts, 503);
      }
      if (res.status >= 400 && res.status < 500) max = 2;
    } catch (e) {
      if (e instanceof DuplicatiError) throw e;
      lastStatus = undefined;
    }
    if (attempts >= max) {
      throw new DuplicatiError(lastReason ? failed(lastReason, oauthUrl, module) : `HTTP ${lastStatus ?? 'network error'}`, attempts, lastStatus);
    }
    await new Promise((r) => setTimeout(r, (opts.backoffUnitMs ?? 10) * 2 ** (attempts - 1)));
  }
}

function failed(reason: string, oauthUrl: string, module: string): string {
  return `Failed to authorize using the OAuth service: ${reason}. If the problem persists, try generating a new authid token from: ${loginUrl(oauthUrl, module)}`;
}
