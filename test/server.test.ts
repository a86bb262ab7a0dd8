import { describe, expect, it } from 'vitest';
import { clientAddress } from '../src/server.ts';

describe('client address for rate limits', () => {
  it('is the peer unless told to trust a local proxy', () => {
    expect(clientAddress('203.0.113.9', '198.51.100.1', false)).toBe('203.0.113.9');
    expect(clientAddress('127.0.0.1', '198.51.100.1', false)).toBe('127.0.0.1');
  });
  it('behind a trusted local proxy: the last X-Forwarded-For entry, which the proxy wrote', () => {
    expect(clientAddress('127.0.0.1', '6.6.6.6, 198.51.100.1', true)).toBe('198.51.100.1');
    expect(clientAddress('::1', '198.51.100.7', true)).toBe('198.51.100.7');
  });
  it('ignores X-Forwarded-For from a peer that is not local, even when trusting a proxy', () => {
    expect(clientAddress('203.0.113.9', '127.0.0.1', true)).toBe('203.0.113.9');
  });
});
