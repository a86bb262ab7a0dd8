import { BrokerError } from '../../errors.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { script, TYPE } from '../respond.ts';

/** A JavaScript identifier path such as `angular.callbacks._0`: nothing else may name a JSONP callback. */
const JSONP_CALLBACK = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/** GET /fetch: legacy Duplicati UI polling; always 200, JSON or JSONP, as the original service answered. */
export async function fetchAuthId(x: Exchange, { broker }: Deps): Promise<Response> {
  const q = x.url.searchParams;
  const callback = q.get('callback') || q.get('jsonp');
  if (callback !== null && (callback.length > 128 || !JSONP_CALLBACK.test(callback))) {
    throw new BrokerError('invalid_request', 'The JSONP callback must be a JavaScript identifier path such as angular.callbacks._0.');
  }
  const state = await broker.fetchTokens.take(q.get('token'));
  const body =
    state.kind === 'missing'
      ? { error: 'Missing token' }
      : state.kind === 'unknown'
        ? { error: 'No such entry' }
        : state.kind === 'wait'
          ? { wait: 'Not ready' }
          : { authid: state.authid };
  const text = JSON.stringify(body);
  // The leading comment defeats content sniffing tricks that abuse JSONP (e.g. Rosetta Flash).
  if (callback) return script(`/**/${callback}(${text});`, TYPE.javascript);
  return script(text, TYPE.json);
}
