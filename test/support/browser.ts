/**
 * Real-browser helpers: Debian's Chromium driven by playwright-core (never a
 * downloaded browser), and tiny local pages standing in for Duplicati's web UIs.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** A fresh temporary profile each time; Chromium's own network chatter is off (only loopback is reachable). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Duplicati's new UI: opens `start` (its oauth-url plus `?type=`) in a popup on a
 * click, and takes the AuthID from a `message` event whose data starts with
 * `authid:`. Every message is recorded in `window.received`, so a test can also
 * tell that nothing arrived.
 */
const NEW_UI = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Duplicati (new UI stand-in)</title></head>
<body>
<button id="connect" type="button">AuthID</button>
<input id="authid" type="text" size="100">
<script>
window.received = [];
let popup = null;
window.addEventListener('message', (e) => {
  const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
  window.received.push({ origin: e.origin, data, fromPopup: popup !== null && e.source === popup });
  if (typeof e.data === 'string' && e.data.startsWith('authid:')) document.getElementById('authid').value = e.data.slice('authid:'.length);
});
document.getElementById('connect').addEventListener('click', () => {
  const start = new URLSearchParams(location.search).get('start');
  popup = window.open(start, '_blank', 'height=600,width=450,menubar=0,status=0,titlebar=0,toolbar=0');
});
</script>
</body></html>`;

/**
 * Duplicati's old AngularJS UI (EditUriBackendConfig 'oauth-base'): a token made
 * like Duplicati makes it, the start page opened with `&token=`, and `/fetch`
 * polled by JSONP (`$http.jsonp` names its callback `angular.callbacks._0`) until
 * an answer carries `authid`. Duplicati polls every 3 s; this page every 500 ms.
 * Every JSONP answer is recorded in `window.answers`.
 */
const LEGACY_UI = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Duplicati (legacy UI stand-in)</title></head>
<body>
<button id="connect" type="button">AuthID</button>
<input id="authid" type="text" size="100">
<code id="token"></code>
<script>
const broker = new URLSearchParams(location.search).get('broker');
const token = Math.random().toString(36).substr(2) + Math.random().toString(36).substr(2);
document.getElementById('token').textContent = token;
window.angular = { callbacks: {} };
window.answers = [];
let done = false;
let polls = 0;
function poll() {
  if (done || ++polls > 120) return;
  const script = document.createElement('script');
  window.angular.callbacks._0 = (data) => {
    window.answers.push(data);
    if (data && data.authid) { document.getElementById('authid').value = data.authid; done = true; }
  };
  script.src = broker + '/fetch?callback=angular.callbacks._0&token=' + encodeURIComponent(token);
  script.onload = script.onerror = () => { script.remove(); if (!done) setTimeout(poll, 500); };
  document.head.appendChild(script);
}
document.getElementById('connect').addEventListener('click', () => {
  window.open(broker + '/?type=onedrivev2&token=' + token, '_blank', 'height=600,width=450,menubar=0,status=0,titlebar=0,toolbar=0');
  setTimeout(poll, 500);
});
</script>
</body></html>`;

export interface UiServer {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  origin: string;
  /** The new-UI page, which opens `start` in its popup. */
  newUi(start: string): string;
  /** The legacy-UI page, whose oauth service is `broker`. */
  legacyUi(broker: string): string;
  close(): Promise<void>;
}

/** Serves both stand-in pages on 127.0.0.1 on a free port: one origin per server. */
export async function startUiServer(): Promise<UiServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const body = path === '/new-ui' ? NEW_UI : path === '/legacy-ui' ? LEGACY_UI : undefined;
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    newUi: (start) => `${origin}/new-ui?start=${encodeURIComponent(start)}`,
    legacyUi: (broker) => `${origin}/legacy-ui?broker=${encodeURIComponent(broker)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** On the provider's login form: any user name, sign in, and wait for the broker's logged-in page. Returns the AuthID shown. */
export async function signInAtProvider(page: Page, p: { authority: string; brokerUrl: string; username: string }): Promise<string> {
  await page.waitForURL((u) => u.href.startsWith(`${p.authority}/interaction/`));
  await page.fill('#username', p.username);
  await page.fill('#password', 'any password');
  await Promise.all([page.waitForURL((u) => u.href.startsWith(`${p.brokerUrl}/logged-in?`)), page.click('#submit')]);
  return ((await page.textContent('#authid')) ?? '').trim();
}

/** On the broker's start page: the passcode, then "Continue to Microsoft". Resolves with the status of `POST /login` (302 or an error page). */
export async function submitPasscode(page: Page, passcode: string): Promise<number> {
  await page.fill('#passcode', passcode);
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login'),
    page.click('button[type=submit]'),
  ]);
  return res.status();
}
