/**
 * Real browser: the compiled binary, the local Entra-like provider, and Debian's
 * Chromium (playwright-core) playing Duplicati's web UIs, which use the broker as
 * an unmodified OAuth service: the new UI takes the AuthID by postMessage from
 * the popup, the legacy AngularJS UI polls /fetch by JSONP.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOPBACK_CALLBACK, configuredHome, serve, type Served } from './support/binary.ts';
import { launchChromium, signInAtProvider, startUiServer, submitPasscode, type UiServer } from './support/browser.ts';
import { startEntra, type Entra } from './support/entra.ts';
import { missingCommand, unavailable } from './support/requires.ts';
import { CHROMIUM } from './support/browser.ts';
import { PASSCODE } from './support/passcode.ts';
import { AUTHID } from './support/authid.ts';

const noChromium = unavailable('browser.test.ts', 'the real-browser tests', missingCommand(CHROMIUM));

const SHOTS = resolve(import.meta.dirname, '../test-artifacts/screenshots');
/** How long a page that must receive nothing keeps listening after the logged-in page has loaded. */
const QUIET_MS = 1500;

interface Received {
  origin: string;
  data: string;
  fromPopup: boolean;
}
type UiWindow = Window & { received: Received[]; answers: Record<string, string>[] };

let entra: Entra | undefined;
let allowedUi: UiServer | undefined;
let otherUi: UiServer | undefined;
let served: Served | undefined;
let browser: Browser | undefined;
let brokerUrl = '';

beforeAll(async () => {
  if (noChromium) return; // every describe below is skipped, with the reason printed above
  mkdirSync(SHOTS, { recursive: true });
  entra = await startEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
  allowedUi = await startUiServer();
  otherUi = await startUiServer();
  const { home } = await configuredHome(entra, PASSCODE, { allowedOrigins: [allowedUi.origin] });
  served = await serve(home);
  brokerUrl = new URL(served.url).origin;
  browser = await launchChromium();
});

afterAll(async () => {
  // Each on its own, so one failure cannot leave a browser or a process behind.
  await Promise.allSettled([browser?.close(), served?.stop(), allowedUi?.close(), otherUi?.close()]);
  await entra?.close();
});

/**
 * A fresh context (own cookies: the provider's session from an earlier login
 * would skip its login form) with every console message recorded; closed even
 * when the test fails.
 */
async function withContext(fn: (ctx: BrowserContext, messages: string[]) => Promise<void>, opts: BrowserContextOptions = {}): Promise<void> {
  const ctx = await browser!.newContext(opts);
  // A stuck step fails with Playwright's own message (what it waited for), well before vitest's timeout.
  ctx.setDefaultTimeout(10_000);
  const messages: string[] = [];
  ctx.on('console', (m) => messages.push(`${m.type()} ${m.page()?.url() ?? '?'}: ${m.text()}`));
  ctx.on('weberror', (e) => messages.push(`pageerror ${e.page()?.url() ?? '?'}: ${e.error().message}`));
  try {
    await fn(ctx, messages);
  } finally {
    await ctx.close();
  }
}

const cspViolations = (messages: string[]) => messages.filter((m) => /Content Security Policy|Refused to/i.test(m));
/** Errors on the broker's own pages (a failed favicon request included); `except` names expected ones. */
const brokerPageErrors = (messages: string[], except?: RegExp) =>
  messages.filter((m) => /^(error|pageerror) /.test(m) && m.includes(` ${brokerUrl}/`) && !except?.test(m));

const login = (page: Page, username: string) => signInAtProvider(page, { authority: entra!.authority, brokerUrl, username });

async function expectRefreshWorks(authid: string): Promise<void> {
  const r = await fetch(`${brokerUrl}/refresh`, { headers: { 'x-authid': authid, 'user-agent': 'Duplicati v2.2.0.0' } });
  expect(r.status, r.headers.get('x-reason') ?? '').toBe(200);
  const body = (await r.json()) as { access_token: string; type: string; expires: number };
  expect(body.type).toBe('onedrivev2');
  expect(body.access_token.length).toBeGreaterThan(10);
  expect(body.expires).toBeGreaterThan(60);
}

/** Nothing wider than the window: a 92-character AuthID or a long URL must wrap, not scroll sideways. */
async function expectNoHorizontalOverflow(page: Page): Promise<void> {
  const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  expect(scroll, `${page.url()} is ${scroll}px wide in a ${inner}px window`).toBeLessThanOrEqual(inner);
}

async function openPopup(page: Page): Promise<Page> {
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#connect')]);
  await popup.waitForLoadState();
  return popup;
}

describe.skipIf(noChromium)('new UI: AuthID by postMessage from the popup', () => {
  it.each([
    ['the start page', '/?type=onedrivev2'],
    ['/refresh (oauth-url ending in /refresh)', '/refresh?type=onedrivev2'],
  ])('a page on an allowed origin, popup opened at %s, receives authid:<AuthID>', async (_, path) => {
    await withContext(async (ctx, messages) => {
      const page = await ctx.newPage();
      await page.goto(allowedUi!.newUi(`${brokerUrl}${path}`));
      const popup = await openPopup(page);
      // Both variants land on the start page for the requested service.
      expect(popup.url()).toBe(`${brokerUrl}/?type=onedrivev2`);
      expect(await popup.inputValue('#id')).toBe('onedrivev2');

      expect(await submitPasscode(popup, PASSCODE)).toBe(302);
      const shown = await login(popup, `browser-allowed-${path.length}`);
      expect(shown).toMatch(AUTHID);

      await page.waitForFunction(() => (window as unknown as UiWindow).received.some((m) => m.data.startsWith('authid:')), null, { timeout: 5000 });
      const received = await page.evaluate(() => (window as unknown as UiWindow).received);
      expect(received).toEqual([{ origin: brokerUrl, data: `authid:${shown}`, fromPopup: true }]);
      expect(await page.inputValue('#authid')).toBe(shown);
      await expectRefreshWorks(shown);
      expect(cspViolations(messages)).toEqual([]);
      expect(brokerPageErrors(messages)).toEqual([]);
    });
  });

  it('a page on an origin not in the allowed list receives nothing', async () => {
    await withContext(async (ctx, messages) => {
      const page = await ctx.newPage();
      await page.goto(otherUi!.newUi(`${brokerUrl}/?type=onedrivev2`));
      const popup = await openPopup(page);
      expect(await submitPasscode(popup, PASSCODE)).toBe(302);
      const shown = await login(popup, 'browser-other-origin');
      expect(shown).toMatch(AUTHID);
      // The opener survived the trip through the provider, so a message could have been delivered:
      // the silence below is the broker's origin targeting, not a lost window reference.
      expect(await popup.evaluate(() => window.opener !== null)).toBe(true);

      await new Promise((r) => setTimeout(r, QUIET_MS));
      expect(await page.evaluate(() => (window as unknown as UiWindow).received)).toEqual([]);
      expect(await page.inputValue('#authid')).toBe('');
      // Chromium logs the refused delivery: the broker did post, to the allowed origin, not to this page's.
      const refused = messages.filter((m) => /does not match the recipient window's origin/.test(m));
      expect(refused, messages.join('\n')).toHaveLength(1);
      expect(refused[0]).toContain(`('${allowedUi!.origin}')`);
      expect(refused[0]).toContain(`('${otherUi!.origin}')`);
      expect(cspViolations(messages)).toEqual([]);
      expect(brokerPageErrors(messages)).toEqual([]);
    });
  });
});

describe.skipIf(noChromium)('legacy UI: AuthID by JSONP polling of /fetch', () => {
  it('a page polling /fetch?callback=angular.callbacks._0 gets the AuthID once, into its input', async () => {
    // The size Duplicati's legacy UI gives its popup (window.open … height=600,width=450).
    await withContext(
      async (ctx, messages) => {
        const page = await ctx.newPage();
        // Duplicati's own page, an allowed origin: only then does the broker honour the fetch token.
        await page.goto(allowedUi!.legacyUi(brokerUrl));
        const token = (await page.textContent('#token'))!;
        expect(token).toMatch(/^[a-z0-9]{9,}$/);
        const popup = await openPopup(page);
        expect(popup.url()).toBe(`${brokerUrl}/?type=onedrivev2&token=${token}`);
        expect(await popup.inputValue('input[type=hidden][name=token]')).toBe(token);

        // The token is registered and polled before the login: the page has seen "Not ready".
        const answers = () => page.evaluate(() => (window as unknown as UiWindow).answers);
        await expect.poll(async () => (await answers()).some((a) => a.wait === 'Not ready'), { timeout: 5000 }).toBe(true);

        expect(await submitPasscode(popup, PASSCODE)).toBe(302);
        const shown = await login(popup, 'browser-legacy');
        expect(shown).toMatch(AUTHID);
        await popup.screenshot({ path: join(SHOTS, 'logged-in-450px.png'), fullPage: true });
        await expectNoHorizontalOverflow(popup);

        await expect.poll(() => page.inputValue('#authid'), { timeout: 5000 }).toBe(shown);
        const all = await answers();
        expect(all.at(-1)).toEqual({ authid: shown });
        for (const a of all.slice(0, -1)) expect([{ wait: 'Not ready' }, { error: 'No such entry' }]).toContainEqual(a);

        // Read once: the next poll for the same token finds nothing.
        const again = await fetch(`${brokerUrl}/fetch?token=${encodeURIComponent(token)}`);
        expect(again.status).toBe(200);
        expect(await again.text()).toBe('{"error":"No such entry"}');
        await expectRefreshWorks(shown);
        expect(cspViolations(messages)).toEqual([]);
        expect(brokerPageErrors(messages)).toEqual([]);
      },
      { viewport: { width: 450, height: 600 } },
    );
  });
});

describe.skipIf(noChromium)('legacy UI from a page that is not allowed', () => {
  it('the fetch token is ignored: the popup still connects, but /fetch never hands out the AuthID', async () => {
    await withContext(async (ctx) => {
      const page = await ctx.newPage();
      await page.goto(otherUi!.legacyUi(brokerUrl));
      const token = (await page.textContent('#token'))!;
      const popup = await openPopup(page);
      expect(await popup.locator('input[type=hidden][name=token]').count()).toBe(0);
      expect(await submitPasscode(popup, PASSCODE)).toBe(302);
      const shown = await login(popup, 'browser-legacy-other');
      expect(shown).toMatch(AUTHID);
      const after = await fetch(`${brokerUrl}/fetch?token=${encodeURIComponent(token)}`);
      expect(await after.text()).toBe('{"error":"No such entry"}');
      expect(await page.inputValue('#authid')).toBe('');
    });
  });
});

describe.skipIf(noChromium)('pages, as a person sees them', () => {
  it('start page, wrong passcode, logged-in page and revoke page render and work (screenshots in test-artifacts/screenshots)', async () => {
    await withContext(
      async (ctx, messages) => {
        const page = await ctx.newPage();
        await page.goto(`${brokerUrl}/?type=onedrivev2`);
        await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('passcode');
        await expectNoHorizontalOverflow(page);
        await page.screenshot({ path: join(SHOTS, 'start.png'), fullPage: true });

        expect(await submitPasscode(page, 'not-the-passcode')).toBe(403);
        const alert = page.locator('[role=alert]');
        await alert.waitFor();
        expect(await alert.textContent()).toMatch(/Wrong connect passcode/);
        // The hint's `broker init` is shown as code, not with literal backticks.
        expect(await alert.textContent()).not.toContain('`');
        expect(await alert.locator('code').first().textContent()).toBe('broker init');
        expect(await page.inputValue('#passcode')).toBe('');
        expect(await page.inputValue('#id')).toBe('onedrivev2');
        await expectNoHorizontalOverflow(page);
        await page.screenshot({ path: join(SHOTS, 'start-wrong-passcode.png'), fullPage: true });

        expect(await submitPasscode(page, PASSCODE)).toBe(302);
        const shown = await login(page, 'screenshot.user@example.com');
        expect(shown).toMatch(AUTHID);
        expect(shown).toHaveLength(92);
        await expectNoHorizontalOverflow(page);
        await page.screenshot({ path: join(SHOTS, 'logged-in.png'), fullPage: true });
        await page.emulateMedia({ colorScheme: 'dark' });
        await page.screenshot({ path: join(SHOTS, 'logged-in-dark.png'), fullPage: true });
        await page.emulateMedia({ colorScheme: 'light' });

        await page.goto(`${brokerUrl}/revoke`);
        await expectNoHorizontalOverflow(page);
        await page.screenshot({ path: join(SHOTS, 'revoke.png'), fullPage: true });
        await page.fill('#authid', shown);
        await Promise.all([page.waitForURL(`${brokerUrl}/revoked`), page.click('button[type=submit]')]);
        expect(await page.textContent('.ok')).toContain('The AuthID is revoked');
        await page.screenshot({ path: join(SHOTS, 'revoke-done.png'), fullPage: true });
        expect((await fetch(`${brokerUrl}/refresh`, { headers: { 'x-authid': shown } })).status).toBe(410);
        expect(cspViolations(messages)).toEqual([]);
        // The one expected error: the wrong passcode's page is a 403.
        expect(brokerPageErrors(messages, /\/login: Failed to load resource: .* 403 /)).toEqual([]);
      },
      { viewport: { width: 1280, height: 800 } },
    );
  });
});
