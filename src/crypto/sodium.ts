import sodium from 'libsodium-wrappers';

/** libsodium initialises its WebAssembly asynchronously; everything else awaits this once. */
export async function loadSodium(): Promise<typeof sodium> {
  await sodium.ready;
  return sodium;
}

export type Sodium = typeof sodium;
