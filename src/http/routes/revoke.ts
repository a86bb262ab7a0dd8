import { asBrokerError, type BrokerError } from '../../errors.ts';
import { MICROSOFT } from '../../oauth/services.ts';
import { describe, HTTP_STATUS } from '../errors.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { revokePage } from '../pages.ts';
import { field, missingAuthId, readForm, wantsHtml } from '../request.ts';
import { json, page } from '../respond.ts';
import { atProviderSentence } from '../../broker/revoke.ts';

/** GET /revoke: the form. */
export function revokeForm(x: Exchange, { broker }: Deps): Response {
  return page(x, broker.ctx.config, 200, revokePage({ nonce: x.nonce, consentUrl: MICROSOFT.accessUrl }));
}

/** POST /revoke, POST /revoked: revoke by authid (form or X-AuthID); a page for a browser, JSON for a script. */
export async function revoke(x: Exchange, { broker }: Deps): Promise<Response> {
  const form = await readForm(x.req);
  const authid = x.req.headers.get('x-authid') || field(form, 'authid', 600);
  const browser = wantsHtml(x.req);
  const answerPage = (status: number, said: { done?: string; error?: string }, err?: BrokerError) =>
    page(x, broker.ctx.config, status, revokePage({ nonce: x.nonce, consentUrl: MICROSOFT.accessUrl, ...said }), err);
  try {
    if (!authid) throw missingAuthId('Send it in the X-AuthID header or the authid form field.');
    const r = await broker.revokeWithAuthId(authid, x.client.address);
    x.keyid = r.keyid;
    const text = r.alreadyRevoked ? 'This AuthID was already revoked.' : 'The AuthID is revoked; the connection is deleted.';
    const there = atProviderSentence(r.atProvider);
    if (browser) return answerPage(200, { done: text, ...(there ? (r.atProvider.done === 'failed' ? { error: there } : { more: there }) : {}) });
    const p = r.atProvider;
    return json({
      revoked: true,
      keyid: r.keyid,
      already_revoked: r.alreadyRevoked,
      ...(p.done === 'nothing' ? {} : { provider: p.provider, provider_revoked: p.done === 'revoked' }),
      ...(there && p.done !== 'revoked' ? { provider_message: there } : {}),
    });
  } catch (err) {
    const e = asBrokerError(err);
    if (!browser || HTTP_STATUS[e.code] >= 500) throw e;
    return answerPage(HTTP_STATUS[e.code], { error: describe(e) }, e);
  }
}
