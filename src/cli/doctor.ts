import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { secretWarning } from '../broker/lifecycle.ts';
import { brokerHome } from '../config/home.ts';
import { loadSettings, type OtherProviderId, otherApps, type Settings } from '../config/settings.ts';
import { asBrokerError } from '../errors.ts';
import { createPkce } from '../oauth/pkce.ts';
import { endpointsOf, MICROSOFT, PROVIDERS } from '../oauth/providers.ts';
import { judge, parseProviderError } from '../oauth/token-endpoint.ts';
import { openStore } from './store-file.ts';
import { EXIT } from './exit-codes.ts';
import type { Io } from './io.ts';
import { checkPublicUrl } from './serve.ts';
import { serveValues } from '../config/options.ts';
import { urlLabel } from '../notify/targets.ts';

type Outcome = { ok: true; text: string } | { ok: false; text: string; fix: string; exit: number };

/**
 * `broker doctor`: each check in one line, with the fix when it fails. The exit
 * code names the first class of problem: 3 settings or app registration, 5 files
 * or store, 6 Microsoft unreachable.
 */
export async function doctorCommand(io: Io, deps: { fetch: typeof fetch; timeoutMs?: number } = { fetch: globalThis.fetch }): Promise<number> {
  const home = brokerHome(io.env);
  const results: [string, Outcome][] = [];
  const check = async (name: string, fn: () => Outcome | Promise<Outcome>) => {
    let r: Outcome;
    try {
      r = await fn();
    } catch (e) {
      const b = asBrokerError(e);
      r = { ok: false, text: b.message, fix: b.hint ?? 'See the message.', exit: b.code === 'store_error' ? EXIT.store : EXIT.config };
    }
    results.push([name, r]);
    io.out(r.ok ? `ok    ${name}: ${r.text}` : `FAIL  ${name}: ${r.text}\n      fix: ${r.fix}`);
    return r;
  };

  let settings: Settings | undefined;
  await check('settings', () => {
    settings = loadSettings(home, io.env);
    checkPublicUrl(settings, false);
    const warn = secretWarning(settings.secretExpires, Date.now());
    return warn
      ? { ok: false, text: warn, fix: 'Create a new client secret in Entra, then `broker init --client-secret-file …`.', exit: EXIT.config }
      : { ok: true, text: `complete (${home})` };
  });

  await check('permissions', () => {
    const bad: string[] = [];
    const mode = (p: string) => statSync(p).mode & 0o777;
    if (mode(home) & 0o077) bad.push(`${home} is ${mode(home).toString(8)}`);
    for (const f of readdirSync(home)) {
      const m = mode(join(home, f));
      if (m & 0o077) bad.push(`${f} is ${m.toString(8)}`);
    }
    return bad.length
      ? { ok: false, text: `readable by others: ${bad.join(', ')}`, fix: `chmod 700 ${home} && chmod 600 ${home}/*`, exit: EXIT.store }
      : { ok: true, text: 'folder 0700, files 0600' };
  });

  await check('store', async () => {
    const store = await openStore(home, io.env);
    try {
      const n = (await store.countByState()).reduce((a, c) => a + c.count, 0);
      // PostgreSQL: the URL without its password.
      return { ok: true, text: `${store.kind === 'postgres' ? `${store.where} ` : ''}opens and is migrated (${n} connections)` };
    } finally {
      await store.close();
    }
  });

  if (settings) {
    const n = serveValues({}, io.env, settings);
    if (n.notifyUrls?.length || n.notifyCommand) {
      await check('notifications', async () => {
        const bad: string[] = [];
        // Reachable is enough: any HTTP answer; nothing is posted (`broker notify test` does that).
        for (const url of n.notifyUrls ?? []) {
          try {
            await deps.fetch(url, { method: 'HEAD', redirect: 'manual', signal: AbortSignal.timeout(deps.timeoutMs ?? 5_000) });
          } catch {
            bad.push(`${urlLabel(url)} cannot be reached`);
          }
        }
        // The program after any VAR=value assignments (which may hold a password, and are never shown).
        const program = n.notifyCommand
          ?.trim()
          .split(/\s+/)
          .find((w) => !/^\w+=/.test(w));
        if (program && /^[\w./-]+$/.test(program) && !(program.includes('/') ? existsSync(program) : Bun.which(program))) {
          bad.push(`the command ${program} is not found`);
        }
        const count = (n.notifyUrls?.length ?? 0) + (n.notifyCommand ? 1 : 0);
        return bad.length
          ? { ok: false, text: bad.join('; '), fix: 'Check --notify-url and --notify-command, then `broker notify test`.', exit: EXIT.config }
          : { ok: true, text: `${count} target${count > 1 ? 's' : ''} reachable (\`broker notify test\` sends a test event)` };
      });
    }
  }

  if (settings?.clientId) {
    const s = settings;
    const tokenUrl = MICROSOFT.defaults(s).tokenUrl;
    let reached: Response | undefined;
    await check('authority', async () => {
      // A deliberately invalid code: Microsoft checks the client before the code,
      // so invalid_grant means the id and secret were accepted, invalid_client not.
      const probed = await probe(
        tokenUrl,
        { client_id: s.clientId, client_secret: s.clientSecret!, redirect_uri: `${s.publicUrl}/logged-in`, code_verifier: createPkce().verifier },
        deps,
        {
          unreachable: 'Check the network, DNS and proxy settings, and --authority.',
          redirect: 'Set --authority to the identity platform itself (https://login.microsoftonline.com), not an address that forwards.',
        },
      );
      if (!(probed instanceof Response)) return probed;
      reached = probed;
      return { ok: true, text: `${new URL(tokenUrl).origin} answers` };
    });
    if (reached) {
      const res = reached;
      await check('app registration', async () => {
        // The broker's own reading of Microsoft's answer (judge), so doctor and a failing
        // refresh agree. Nothing of the body is shown but the AADSTS numbers and, once
        // judge has recognised it, the error token: the rest may echo request values.
        const p = parseProviderError(res.status, await res.json().catch(() => undefined));
        if (p.error === 'invalid_grant') return { ok: true, text: 'client id and secret accepted by Microsoft' };
        const numbers = p.errorCodes.length ? ` AADSTS${p.errorCodes.join(', AADSTS')}` : '';
        const { code, why } = judge(p);
        if (code === 'app_misconfigured') {
          const fix =
            p.error === 'invalid_client'
              ? 'Create a new client secret in Entra, then `broker init --client-secret-file …`.'
              : "Check the tenant setting against the app's supported account types, and the client id.";
          return { ok: false, text: `${why} [${p.error}${numbers}]`, fix, exit: EXIT.config };
        }
        return {
          ok: false,
          text: `unexpected answer [HTTP ${p.status}${numbers}]`,
          fix: 'Check --authority and --tenant; try again later.',
          exit: EXIT.upstream,
        };
      });
    }
  }

  for (const id of settings ? otherApps(settings) : []) await check(`${PROVIDERS[id].name} app`, () => checkOtherApp(id, settings!, deps));

  const failed = results.filter(([, r]) => !r.ok);
  io.out(failed.length ? `\n${failed.length} problem${failed.length > 1 ? 's' : ''} found.` : '\nAll checks passed.');
  const first = failed[0]?.[1];
  return first && !first.ok ? first.exit : EXIT.ok;
}

/**
 * Another provider's app, as the Microsoft check does it: a deliberately invalid
 * code, so that an answer about the code means the client id and secret passed,
 * read with the provider's own error table.
 */
async function checkOtherApp(id: OtherProviderId, s: Settings, deps: { fetch: typeof fetch; timeoutMs?: number }): Promise<Outcome> {
  const provider = PROVIDERS[id];
  const app = s.providers![id]!;
  const tokenUrl = endpointsOf(provider, app).tokenUrl;
  const res = await probe(tokenUrl, { client_id: app.clientId, client_secret: app.clientSecret, redirect_uri: `${s.publicUrl}/logged-in` }, deps, {
    unreachable: 'Check the network, DNS and proxy settings, and --token-url.',
    redirect: `Set --token-url to ${provider.name}'s token endpoint itself.`,
  });
  if (!(res instanceof Response)) return res;
  const p = parseProviderError(res.status, await res.json().catch(() => undefined));
  const { code, why } = provider.judge(p);
  const token = p.error || (p.result !== undefined ? `result ${p.result}` : `HTTP ${p.status}`);
  if (code === 'app_misconfigured') {
    return {
      ok: false,
      text: `${why} [${token}]`,
      fix: `Check the client id and secret at ${provider.name}, then \`broker init --provider ${id} …\`.`,
      exit: EXIT.config,
    };
  }
  if (code === 'upstream_error') return { ok: false, text: `unexpected answer [${token}]`, fix: 'Try again later; check --token-url.', exit: EXIT.upstream };
  return { ok: true, text: `client id and secret accepted by ${provider.name}` };
}

/**
 * An authorization-code grant with a deliberately invalid code: the provider checks the
 * client before the code, so its answer says whether the id and secret were accepted.
 * Never follows a redirect: the body carries the app secret, and a redirect would hand it
 * to whatever host it names ('manual' rather than 'error', as the token client has, only
 * so that the check can say what happened). The answer, or the failed check.
 */
async function probe(
  tokenUrl: string,
  client: Record<string, string>,
  deps: { fetch: typeof fetch; timeoutMs?: number },
  fix: { unreachable: string; redirect: string },
): Promise<Response | Outcome> {
  let res: Response;
  try {
    res = await deps.fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...client, grant_type: 'authorization_code', code: 'broker-doctor-invalid-code' }),
      redirect: 'manual',
      signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
    });
  } catch {
    return { ok: false, text: `${tokenUrl} cannot be reached`, fix: fix.unreachable, exit: EXIT.upstream };
  }
  if (res.status >= 300 && res.status < 400) {
    return {
      ok: false,
      text: `${tokenUrl} answered with a redirect (HTTP ${res.status}); the broker never follows one, since the app secret would go along`,
      fix: fix.redirect,
      exit: EXIT.config,
    };
  }
  return res;
}
