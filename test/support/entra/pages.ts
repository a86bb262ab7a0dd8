/** The provider's HTML: the login page (stable ids for Playwright) and its error and logout pages. */

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE_STYLE =
  'body{font-family:"Segoe UI",sans-serif;background:#f2f2f2;margin:0}' +
  'main{background:#fff;max-width:440px;margin:60px auto;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}' +
  'label{display:block;margin-top:16px}input{width:100%;padding:6px 0;border:0;border-bottom:1px solid #666;font-size:15px}' +
  '.buttons{margin-top:24px;display:flex;gap:8px;justify-content:flex-end}' +
  'button{padding:6px 24px;font-size:15px;border:0;cursor:pointer}#submit{background:#0067b8;color:#fff}';

export function page(title: string, content: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${PAGE_STYLE}</style></head>
<body><main>${content}</main></body>
</html>`;
}

/**
 * The only interactive page. Ids are stable so Playwright can target them:
 * `#username`, `#password`, `#submit`, `#cancel`.
 */
export function loginPage(uid: string, loginHint: string | undefined): string {
  const base = `/interaction/${encodeURIComponent(uid)}`;
  return page(
    'Sign in to your account',
    `<h1>Sign in</h1>
<p>Local Entra ID test fixture. Any user name works; the password is ignored.</p>
<form id="login-form" method="post" action="${base}/login">
  <label for="username">Email, phone, or Skype</label>
  <input id="username" name="username" type="text" autocomplete="username" required autofocus value="${escapeHtml(loginHint ?? '')}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <div class="buttons">
    <button id="cancel" type="submit" form="cancel-form">Cancel</button>
    <button id="submit" type="submit">Sign in</button>
  </div>
</form>
<form id="cancel-form" method="post" action="${base}/abort"></form>`,
  );
}
