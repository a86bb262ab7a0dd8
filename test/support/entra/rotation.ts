/**
 * The provider's storage, which is where refresh-token rotation and reuse
 * detection live: a used refresh token is marked consumed (oidc-provider then
 * revokes the grant on replay), except for one replay within `reuseGraceMs`.
 */
import type { Adapter, AdapterConstructor, AdapterPayload } from 'oidc-provider';

interface StoredEntry {
  payload: AdapterPayload;
  expiresAt: number | undefined;
}

/**
 * In-memory persistence for oidc-provider. The bundled memory adapter would
 * work, but it warns on every start and gives no way to enumerate grants,
 * which `revokeAllGrants` needs. Expiry is checked lazily, so no timers.
 */
export class MemoryStore {
  readonly models = new Map<string, Map<string, StoredEntry>>();
  /** Grace for rotated refresh tokens (see `EntraOptions.reuseGraceMs`). */
  reuseGraceMs = 0;
  /** Called when a rotated refresh token is accepted (and rotated) within the grace. */
  onReuseWithinGrace: () => void = () => {};
  /** When each refresh token was first rotated, and whether its one grace use was taken. */
  readonly #rotations = new Map<string, { at: number; graceClaimed: boolean }>();

  /**
   * Hides `consumed` from the provider for one presentation within the grace,
   * so oidc-provider rotates the token again instead of revoking the grant.
   * Claimed synchronously, so two concurrent replays cannot both get it.
   */
  presentRefreshToken(id: string, payload: AdapterPayload): AdapterPayload {
    if (!payload.consumed || this.reuseGraceMs <= 0) return payload;
    const rotation = this.#rotations.get(id);
    if (!rotation || rotation.graceClaimed || Date.now() - rotation.at > this.reuseGraceMs) return payload;
    rotation.graceClaimed = true;
    const { consumed: _consumed, ...rest } = payload;
    return rest;
  }

  consumedRefreshToken(id: string, alreadyConsumed: boolean): void {
    const rotation = this.#rotations.get(id);
    if (alreadyConsumed && rotation?.graceClaimed) {
      this.onReuseWithinGrace();
      return;
    }
    if (rotation) return;
    if (this.#rotations.size >= 10_000) {
      // Bounded: forget rotations far outside any grace a test would use.
      const cutoff = Date.now() - 10 * 60_000;
      for (const [k, v] of this.#rotations) if (v.at < cutoff) this.#rotations.delete(k);
    }
    this.#rotations.set(id, { at: Date.now(), graceClaimed: false });
  }

  forgetRefreshToken(id: string): void {
    this.#rotations.delete(id);
  }

  model(name: string): Map<string, StoredEntry> {
    let entries = this.models.get(name);
    if (!entries) {
      entries = new Map();
      this.models.set(name, entries);
    }
    return entries;
  }

  adapter(): AdapterConstructor {
    const store = this;

    return class MemoryAdapter implements Adapter {
      readonly #entries: Map<string, StoredEntry>;
      readonly #isRefreshToken: boolean;

      constructor(modelName: string) {
        this.#entries = store.model(modelName);
        this.#isRefreshToken = modelName === 'RefreshToken';
      }

      #live(id: string): StoredEntry | undefined {
        const entry = this.#entries.get(id);
        if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
          this.#entries.delete(id);
          return undefined;
        }
        return entry;
      }

      #findBy(field: 'uid' | 'userCode', value: string): AdapterPayload | undefined {
        for (const [id, entry] of this.#entries) {
          if (entry.payload[field] === value) return this.#live(id) ? { ...entry.payload } : undefined;
        }
        return undefined;
      }

      async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
        // Copy so later mutations of the model instance don't leak into
        // "persisted" state, as with a real database.
        this.#entries.set(id, {
          payload: { ...payload },
          expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined,
        });
      }

      async find(id: string): Promise<AdapterPayload | undefined> {
        const entry = this.#live(id);
        if (!entry) return undefined;
        return this.#isRefreshToken ? store.presentRefreshToken(id, { ...entry.payload }) : { ...entry.payload };
      }

      async findByUid(uid: string): Promise<AdapterPayload | undefined> {
        return this.#findBy('uid', uid);
      }

      async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
        return this.#findBy('userCode', userCode);
      }

      async consume(id: string): Promise<void> {
        const entry = this.#live(id);
        if (!entry) return;
        if (this.#isRefreshToken) store.consumedRefreshToken(id, Boolean(entry.payload.consumed));
        entry.payload.consumed = Math.floor(Date.now() / 1000);
      }

      async destroy(id: string): Promise<void> {
        this.#entries.delete(id);
        if (this.#isRefreshToken) store.forgetRefreshToken(id);
      }

      async revokeByGrantId(grantId: string): Promise<void> {
        for (const [id, entry] of this.#entries) {
          if (entry.payload.grantId !== grantId) continue;
          this.#entries.delete(id);
          if (this.#isRefreshToken) store.forgetRefreshToken(id);
        }
      }
    };
  }
}
