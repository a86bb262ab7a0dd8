import type { Account } from '../oauth/id-token.ts';
import type { Service } from '../oauth/services.ts';

const esc = (s: string): string => Bun.escapeHTML(s);
/** Error texts and hints name commands in backticks (as the CLI prints them); on a page those are code. */
const rich = (s: string): string => esc(s).replace(/`([^`<>]+)`/g, '<code>$1</code>');

/** The start page, offering only `type`: where Duplicati and a service link send the browser. */
export function startUrl(type: string): string {
  return `/?type=${encodeURIComponent(type)}`;
}

/** Page chrome. Styles and scripts carry the response's CSP nonce; nothing is loaded from elsewhere. */
export function layout(p: { title: string; nonce: string; body: string; script?: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${esc(p.title)} · broker</title>
<style nonce="${p.nonce}">
:root{color-scheme:light dark;--fg:#1d232b;--muted:#5b6573;--bg:#f5f7fa;--card:#fff;--line:#d9dee5;--accent:#0f6cbd;--accent-fg:#fff;--bad:#b3261e;--ok:#1a7f37;--code:#eef1f5}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#9aa4b2;--bg:#14171c;--card:#1d2127;--line:#323843;--accent:#4ca0f0;--accent-fg:#0b1420;--bad:#f2867e;--ok:#5fd07a;--code:#262b33}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:40rem;margin:3rem auto;padding:0 1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:1.75rem 2rem;box-shadow:0 1px 3px rgba(0,0,0,.06)}
@media (max-width:32rem){main{margin:1rem auto;padding:0 .5rem}.card{padding:1.25rem 1rem}}
a{color:var(--accent)}
h1{font-size:1.4rem;margin:0 0 .25rem}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
p{margin:.5rem 0}
.muted{color:var(--muted);font-size:.92rem}
.brand{font-weight:600;letter-spacing:.02em;color:var(--muted);font-size:.85rem;text-transform:uppercase;margin-bottom:1rem}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
select,input[type=password],input[type=text]{width:100%;padding:.6rem .7rem;font:inherit;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg)}
button,.button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.2rem;font:inherit;font-weight:600;border:0;border-radius:8px;background:var(--accent);color:var(--accent-fg);cursor:pointer;text-decoration:none}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent);margin-top:.5rem}
.error{border-left:4px solid var(--bad);padding:.5rem .9rem;background:color-mix(in srgb,var(--bad) 8%,transparent);border-radius:6px;margin:1rem 0}
.ok{color:var(--ok)}
code,pre{font:.9rem/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);border-radius:6px}
code{padding:.1rem .3rem}
pre{padding:.75rem .9rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
.secret{display:block;padding:.9rem 1rem;font-size:1rem;word-break:break-all;border:1px dashed var(--line);user-select:all}
footer{margin-top:1.5rem;text-align:center}
footer a{color:var(--muted)}
</style>
</head>
<body>
<main>
<div class="card">
<div class="brand">broker · private OAuth token service</div>
${p.body}
</div>
<footer class="muted"><a href="/">Connect</a> · <a href="/revoke">Revoke an AuthID</a></footer>
</main>
${p.script ? `<script nonce="${p.nonce}">${p.script}</script>` : ''}
</body>
</html>`;
}

export function startPage(p: {
  nonce: string;
  services: readonly Service[];
  selected?: string;
  error?: string;
  fetchToken?: string;
  /** The `?type=` the page was opened with: kept through a wrong passcode. */
  filter?: string;
}): string {
  const option = (s: Service) => `<option value="${esc(s.id)}"${s.id === p.selected ? ' selected' : ''}>${esc(s.name)}</option>`;
  // Grouped by provider, in the order of the services table.
  const groups = new Map<string, Service[]>();
  for (const s of p.services) groups.set(s.provider.name, [...(groups.get(s.provider.name) ?? []), s]);
  const options = [...groups].map(([name, list]) => `<optgroup label="${esc(name)}">${list.map(option).join('')}</optgroup>`).join('');
  const only = p.services.length === 1 ? p.services[0] : undefined;
  if (p.services.length === 0) {
    return layout({
      title: 'Connect',
      nonce: p.nonce,
      body: `<h1>Nothing to connect yet</h1><p>This broker has no provider's app set up. Its owner adds one with <code>broker init</code>.</p>`,
    });
  }
  const body = `
<h1>Connect ${only ? esc(only.name) : 'a storage account'}</h1>
<p class="muted">Sign in once; the broker keeps the connection sealed and gives your backup software short-lived access tokens. You get an <strong>AuthID</strong>, the only key to it.</p>
${p.error ? `<div class="error" role="alert">${rich(p.error)}</div>` : ''}
<form method="post" action="/login">
<input type="text" name="username" value="broker" autocomplete="username" hidden>
${p.filter ? `<input type="hidden" name="type" value="${esc(p.filter)}">` : ''}
<label for="id">Service</label>
<select id="id" name="id">${options}</select>
<label for="passcode">Connect passcode</label>
<input id="passcode" name="passcode" type="password" autocomplete="current-password" required autofocus>
<p class="muted">Set by the broker's owner with <code>broker init</code>. Only the owner can create connections.</p>
${p.fetchToken ? `<input type="hidden" name="token" value="${esc(p.fetchToken)}">` : ''}
<button type="submit">Continue to ${only ? esc(only.provider.name) : 'sign in'}</button>
</form>`;
  return layout({ title: 'Connect', nonce: p.nonce, body });
}

export function unknownServicePage(p: { nonce: string; requested: string; provider?: string; services: readonly Service[] }): string {
  const list = p.services.map((s) => `<li><a href="${startUrl(s.id)}">${esc(s.name)}</a> <code>${esc(s.id)}</code></li>`).join('');
  const why = p.provider
    ? `This broker has no ${esc(p.provider)} app set up, so it cannot connect <code>${esc(p.requested)}</code>. Its owner adds one with <code>broker init</code>.`
    : `This broker does not offer <code>${esc(p.requested.slice(0, 40))}</code>.`;
  const body = `
<h1>Service not offered</h1>
<div class="error" role="alert">${why}</div>
<p>It offers:</p><ul>${list}</ul>`;
  return layout({ title: 'Service not offered', nonce: p.nonce, body });
}

export function loggedInPage(p: {
  nonce: string;
  authid: string;
  keyid: string;
  service: Service;
  account: Account;
  /** pCloud: `authid` is the provider's access token, and the broker kept nothing. */
  keptNothing?: boolean;
  publicUrl: string;
  allowedOrigins: readonly string[];
}): string {
  const who = p.account.username ?? p.account.name ?? `your ${p.service.provider.name} account`;
  const refreshUrl = `${p.publicUrl}/refresh`;
  const body = `
<h1 class="ok">Connected: ${esc(p.service.name)}</h1>
<p class="muted">Signed in as ${esc(who)}. Keyid <code>${esc(p.keyid)}</code>.</p>
<h2>Your AuthID</h2>
<p>This is shown <strong>once</strong>. Keep it like a password: whoever holds it can get access tokens for this account.</p>
<code id="authid" class="secret">${esc(p.authid)}</code>
<button type="button" id="copy" class="secondary">Copy AuthID</button> <span id="copied" class="muted" aria-live="polite"></span>
<h2>Use it with Duplicati</h2>
<pre>--authid=&lt;the AuthID&gt;
--oauth-url=${esc(refreshUrl)}</pre>
${p.service.provider.note ? `<p class="muted">${esc(p.service.provider.note)}</p>` : ''}
<h2>Use it from a script</h2>
<pre>export BROKER_AUTHID='&lt;the AuthID&gt;'
curl -fsS -H "X-AuthID: $BROKER_AUTHID" ${esc(refreshUrl)} | jq -r .access_token</pre>
<p class="muted">To end this connection later: <code>broker revoke ${esc(p.keyid)}</code> on the broker, or the <a href="/revoke">revoke page</a>.</p>`;
  // The authid is read from the page, not written into the script, so no string escaping is involved.
  const script = `
const id = document.getElementById('authid').textContent;
document.getElementById('copy').addEventListener('click', async () => {
  try { await navigator.clipboard.writeText(id); document.getElementById('copied').textContent = 'Copied.'; }
  catch { document.getElementById('copied').textContent = 'Select the AuthID and copy it by hand.'; }
});
const origins = ${JSON.stringify(p.allowedOrigins).replace(/</g, '\\u003c')};
if (window.opener) for (const o of origins) { try { window.opener.postMessage('authid:' + id, o); } catch {} }
`;
  return layout({ title: 'Connected', nonce: p.nonce, body: p.keptNothing ? tokenShownBody(p) : body, script });
}

/** pCloud: its access token does not expire and Duplicati takes it as it is; the broker keeps nothing. */
function tokenShownBody(p: { authid: string; service: Service }): string {
  return `
<h1 class="ok">Connected: ${esc(p.service.name)}</h1>
<h2>Your ${esc(p.service.provider.name)} access token</h2>
<p>This is shown <strong>once</strong>, and the broker keeps nothing of it: ${esc(p.service.provider.note ?? '')}</p>
<code id="authid" class="secret">${esc(p.authid)}</code>
<button type="button" id="copy" class="secondary">Copy the token</button> <span id="copied" class="muted" aria-live="polite"></span>
<h2>Use it with Duplicati</h2>
<pre>--authid=&lt;the token&gt;</pre>
<p class="muted">No <code>--oauth-url</code>: Duplicati's pCloud backend uses the token directly. To end it, remove the app's access in pCloud's settings.</p>`;
}

export function messagePage(p: { nonce: string; title: string; message: string; detail?: string; isError?: boolean }): string {
  const body = `
<h1>${esc(p.title)}</h1>
${p.isError ? `<div class="error" role="alert">${rich(p.message)}</div>` : `<p>${rich(p.message)}</p>`}
${p.detail ? `<p class="muted">${rich(p.detail)}</p>` : ''}
<p><a class="button" href="/">Back to the start page</a></p>`;
  return layout({ title: p.title, nonce: p.nonce, body });
}

export function revokePage(p: { nonce: string; consentUrl: string; error?: string; done?: string; more?: string }): string {
  const body = `
<h1>Revoke an AuthID</h1>
<p class="muted">The broker deletes the sealed connection at once; the AuthID stops working immediately.</p>
${p.error ? `<div class="error" role="alert">${rich(p.error)}</div>` : ''}
${p.done ? `<p class="ok" role="status"><strong>${esc(p.done)}</strong></p>` : ''}
${p.more ? `<p role="status">${esc(p.more)}</p>` : ''}
<form method="post" action="/revoked">
<label for="authid">AuthID</label>
<input id="authid" name="authid" type="password" autocomplete="off" required>
<button type="submit">Revoke</button>
</form>
<p class="muted">For Google, Dropbox and Box connections the broker also revokes the grant at the provider.</p>
<h2>Also remove the app's access at Microsoft</h2>
<p class="muted">Microsoft has no way for the broker to cancel its tokens. Open <a href="${esc(p.consentUrl)}" rel="noreferrer noopener">account.microsoft.com → Privacy</a> → <em>Apps and services that can access your data</em> and remove the app; work accounts: <em>myapps.microsoft.com</em> or your administrator.</p>`;
  return layout({ title: 'Revoke', nonce: p.nonce, body });
}
