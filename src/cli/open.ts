import { Broker } from '../broker/broker.ts';
import type { BrokerConfig, Logger } from '../broker/context.ts';
import { loadSettings, type Settings } from '../config/settings.ts';
import { loadSodium } from '../crypto/sodium.ts';
import type { Store } from '../store/types.ts';
import type { Fetch } from '../oauth/token-endpoint.ts';
import { openStore } from './store-file.ts';

/** What the domain takes from the settings file: at start, and again at each reload. */
export function brokerConfig(settings: Settings): BrokerConfig {
  return {
    clientId: settings.clientId ?? '',
    clientSecret: settings.clientSecret ?? '',
    tenant: settings.tenant,
    authority: settings.authority,
    publicUrl: settings.publicUrl,
    passcodeHash: settings.passcodeHash,
    allowedOrigins: settings.allowedOrigins,
    secretExpires: settings.secretExpires,
    providers: settings.providers,
  };
}

export async function openBroker(
  home: string,
  env: Record<string, string | undefined>,
  deps: { fetch: Fetch; now: () => number; log: Logger; watch?: boolean },
): Promise<{ broker: Broker; settings: Settings; store: Store }> {
  const settings = loadSettings(home, env);
  const sodium = await loadSodium();
  const store = await openStore(home, env, { watch: deps.watch });
  const broker = new Broker({
    config: brokerConfig(settings),
    store,
    sodium,
    fetch: deps.fetch,
    now: deps.now,
    log: deps.log,
  });
  return { broker, settings, store };
}
