/**
 * An in-process broker whose only app is at one stand-in provider (Google-,
 * Dropbox-, Box- or pCloud-like): the real HTTP app function, the real store in
 * a temp folder, the real network to the stand-in, a clock the test moves.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { Broker } from '../../../src/broker/broker.ts';
import { type BrokerConfig, type Logger, silentLogger } from '../../../src/broker/context.ts';
import { hashPasscode } from '../../../src/broker/passcode.ts';
import { loadSodium } from '../../../src/crypto/sodium.ts';
import { createApp } from '../../../src/http/app.ts';
import { awaited } from '../app.ts';
import type { Fetch } from '../../../src/oauth/token-endpoint.ts';
import { SqliteStore } from '../../../src/store/store.ts';
import { AUTHID_IN_PAGE } from '../authid.ts';
import { loginForm } from '../http.ts';
import { PASSCODE } from '../passcode.ts';
import { PRESETS } from './presets.ts';
import { type StandIn, type StandInBehaviour, type StandInKind, startStandIn } from './stand-in.ts';

export const PUBLIC_URL = 'http://broker.test';

export interface ProviderHarness {
  standIn: StandIn;
  broker: Broker;
  store: SqliteStore;
  app: (req: Request, client?: { address: string }) => Promise<Response>;
  clock: { offsetMs: number };
  /** Start page → stand-in → /logged-in; the page and what it shows in `id="authid"`. */
  connect(service: string, opts?: { username?: string; hostname?: string }): Promise<{ authid: string; keyid: string; page: string }>;
  refresh(authid: string): Promise<Response>;
  /** POST /revoke with the AuthID (JSON answer). */
  revoke(authid: string): Promise<Response>;
  /** A new broker process on the same store: nothing kept in memory survives. */
  restart(): void;
  close(): Promise<void>;
}

export async function startProviderHarness(
  kind: StandInKind,
  opts: { behaviour?: Partial<StandInBehaviour>; config?: Partial<BrokerConfig>; log?: Logger; fetch?: Fetch } = {},
): Promise<ProviderHarness> {
  const standIn = await startStandIn({ ...PRESETS[kind], ...opts.behaviour });
  const dir = mkdtempSync(join(tmpdir(), 'broker-providers-'));
  const store = SqliteStore.open(join(dir, 'broker.db'));
  const clock = { offsetMs: 0 };
  const now = () => Date.now() + clock.offsetMs;
  const broker = new Broker({
    config: {
      clientId: '',
      clientSecret: '',
      tenant: 'consumers',
      authority: 'https://login.microsoftonline.com',
      publicUrl: PUBLIC_URL,
      passcodeHash: await hashPasscode(PASSCODE),
      allowedOrigins: ['http://localhost:8200'],
      upstreamTimeoutMs: 5000,
      providers: {
        [kind]: {
          clientId: standIn.clientId,
          clientSecret: standIn.clientSecret,
          authorizeUrl: standIn.authorizeUrl,
          tokenUrl: standIn.tokenUrl,
          revokeUrl: standIn.revokeUrl,
        },
      },
      ...opts.config,
    },
    store,
    sodium: await loadSodium(),
    fetch: opts.fetch ?? globalThis.fetch,
    now,
    log: opts.log ?? silentLogger,
  });
  const h: ProviderHarness = {
    standIn,
    broker,
    store,
    app: awaited(createApp({ broker, version: 'test', now })),
    clock,
    async connect(service, o = {}) {
      const app = h.app;
      const started = await app(new Request(`${PUBLIC_URL}/login`, loginForm({ id: service })));
      if (started.status !== 302) throw new Error(`POST /login answered ${started.status}: ${started.headers.get('x-reason')}`);
      const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
      let callback = await standIn.login(started.headers.get('location')!, { username: o.username });
      if (o.hostname) {
        const u = new URL(callback);
        u.searchParams.set('hostname', o.hostname);
        callback = u.toString();
      }
      const res = await app(new Request(callback, { headers: { cookie } }));
      const page = await res.text();
      if (res.status !== 200) throw new Error(`/logged-in answered ${res.status}: ${res.headers.get('x-reason')}`);
      const authid = AUTHID_IN_PAGE.exec(page)?.[1];
      if (!authid) throw new Error('the page shows no AuthID');
      return { authid, keyid: authid.split(':')[0]!, page };
    },
    refresh(authid) {
      return h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': authid } }));
    },
    revoke(authid) {
      return h.app(new Request(`${PUBLIC_URL}/revoke`, { method: 'POST', headers: { 'x-authid': authid } }));
    },
    restart() {
      h.broker = new Broker({ ...h.broker.ctx });
      h.app = awaited(createApp({ broker: h.broker, version: 'test', now }));
    },
    async close() {
      await store.close();
      await standIn.close();
    },
  };
  return h;
}

/** The harness for the enclosing file or `describe`, usable from the first test on. */
export function useProviderHarness(kind: StandInKind, opts?: Parameters<typeof startProviderHarness>[1]): ProviderHarness {
  let h: ProviderHarness | undefined;
  beforeAll(async () => {
    h = await startProviderHarness(kind, opts);
  });
  afterAll(async () => {
    await h?.close();
  });
  return new Proxy({} as ProviderHarness, {
    get(_, key) {
      if (!h) throw new Error('the provider harness is used before its beforeAll ran');
      const v: unknown = Reflect.get(h, key, h);
      return typeof v === 'function' ? v.bind(h) : v;
    },
  });
}
