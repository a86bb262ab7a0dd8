/**
 * An in-process broker wired to the local Entra fixture: the real HTTP app
 * function (no socket), the real store in a temp folder, the real network to the
 * fixture, and a clock the test can move forward.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '../../src/broker/broker.ts';
import { silentLogger, type BrokerConfig, type Logger } from '../../src/broker/context.ts';
import { hashPasscode } from '../../src/broker/passcode.ts';
import { loadSodium } from '../../src/crypto/sodium.ts';
import { createApp } from '../../src/http/app.ts';
import { awaited } from './app.ts';
import type { Fetch } from '../../src/oauth/token-endpoint.ts';
import { SqliteStore } from '../../src/store/store.ts';
import { authidInPage } from './authid.ts';
import { startEntra, type Entra } from './entra.ts';
import { loginForm } from './http.ts';
import { PASSCODE } from './passcode.ts';

export { PASSCODE };
export const PUBLIC_URL = 'http://broker.test';

export interface Harness {
  entra: Entra;
  broker: Broker;
  store: SqliteStore;
  dbPath: string;
  app: (req: Request, client?: { address: string }) => Promise<Response>;
  clock: { offsetMs: number };
  connect(opts?: { service?: string; username?: string }): Promise<{ authid: string; keyid: string; page: string }>;
  refresh(authid: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Overrides of the broker's settings, e.g. small upstreamTimeoutMs/upstreamBudgetMs for timeout tests. */
  config?: Partial<BrokerConfig>;
  /** Where the broker's log events go (default: nowhere). */
  log?: Logger;
  /** The network (default: the real one), e.g. to hold or fail a chosen request. */
  fetch?: Fetch;
  /** The broker's pauses (default: real ones), e.g. to record them instead of waiting. */
  sleep?: (ms: number) => Promise<void>;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const entra = await startEntra({ redirectUris: [`${PUBLIC_URL}/logged-in`] });
  const dir = mkdtempSync(join(tmpdir(), 'broker-harness-'));
  const dbPath = join(dir, 'broker.db');
  const store = SqliteStore.open(dbPath);
  const clock = { offsetMs: 0 };
  const now = () => Date.now() + clock.offsetMs;
  const broker = new Broker({
    config: {
      clientId: entra.clientId,
      clientSecret: entra.clientSecret,
      tenant: 'consumers',
      authority: entra.authority,
      publicUrl: PUBLIC_URL,
      passcodeHash: await hashPasscode(PASSCODE),
      allowedOrigins: ['http://localhost:8200'],
      upstreamTimeoutMs: 5000,
      ...opts.config,
    },
    store,
    sodium: await loadSodium(),
    fetch: opts.fetch ?? globalThis.fetch,
    now,
    sleep: opts.sleep,
    log: opts.log ?? silentLogger,
  });
  const app = awaited(createApp({ broker, version: 'test', now }));

  const h: Harness = {
    entra,
    broker,
    store,
    dbPath,
    app,
    clock,
    async connect(opts = {}) {
      // The id_token is checked against the broker clock; a login happens in real time.
      clock.offsetMs = 0;
      const started = await app(new Request(`${PUBLIC_URL}/login`, loginForm({ id: opts.service })));
      if (started.status !== 302) throw new Error(`POST /login answered ${started.status}`);
      const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
      const callback = await entra.login(started.headers.get('location')!, { username: opts.username });
      const res = await app(new Request(callback, { headers: { cookie } }));
      const page = await res.text();
      if (res.status !== 200) throw new Error(`/logged-in answered ${res.status}: ${res.headers.get('x-reason')}`);
      const authid = authidInPage(page);
      return { authid, keyid: authid.split(':')[0]!, page };
    },
    refresh(authid, init = {}) {
      const headers = new Headers(init.headers);
      headers.set('x-authid', authid);
      return app(new Request(`${PUBLIC_URL}/refresh`, { ...init, headers }));
    },
    async close() {
      await store.close();
      await entra.close();
    },
  };
  return h;
}

/** Moves the broker's clock past the point where the cached token must be refreshed. */
export function expireCachedToken(h: Harness): void {
  h.clock.offsetMs += 2 * 3600_000;
}
