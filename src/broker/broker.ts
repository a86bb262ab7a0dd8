import { LoginFlow } from './login.ts';
import { FetchTokens } from './fetch-tokens.ts';
import type { BrokerConfig, BrokerContext } from './context.ts';
import { TokenService, short } from './tokens.ts';
import { type ProviderRevocation, revokeGrantAtProvider } from './revoke.ts';

export type RevokeResult = {
  keyid: string;
  alreadyRevoked: boolean;
  /** The provider's side: revoked there too, failed (the message says so), or not possible (where the owner removes access). */
  atProvider: ProviderRevocation;
};

/** The domain facade the HTTP layer and the CLI call; nothing here knows about HTTP. */
export class Broker {
  readonly tokens: TokenService;
  readonly login: LoginFlow;
  readonly fetchTokens: FetchTokens;

  constructor(readonly ctx: BrokerContext) {
    this.tokens = new TokenService(ctx);
    this.login = new LoginFlow(ctx);
    this.fetchTokens = new FetchTokens(() => ctx.store, ctx.now);
  }

  /**
   * Swaps the settings in use (a reloaded settings file). Everything reads
   * `ctx.config` when it needs it, so the next request sees the new ones; a
   * request under way finishes with what it read.
   */
  reconfigure(config: BrokerConfig): void {
    this.ctx.config = config;
  }

  /**
   * Revoke as the holder of the authid (HTTP, `broker revoke <AuthID>`): proves
   * the secret first, revokes here, then at the provider with the grant it opened.
   */
  async revokeWithAuthId(authidText: string, client?: string): Promise<RevokeResult> {
    const { id, keys, record } = await this.tokens.authenticate(authidText, client);
    const grant = record.state === 'revoked' ? null : await this.tokens.open(keys, id.keyid);
    const changed = await this.ctx.store.revoke(id.keyid, this.ctx.now());
    this.tokens.forget(id.keyid);
    if (changed) {
      this.ctx.log.info('connection.revoked', { keyid: short(id.keyid) });
      this.ctx.events?.report({ type: 'connection.revoked', keyid: id.keyid });
    }
    const atProvider = grant ? await revokeGrantAtProvider(this.ctx, grant) : ({ done: 'nothing' } as const);
    return { keyid: id.keyid, alreadyRevoked: !changed && record.state === 'revoked', atProvider };
  }
}
