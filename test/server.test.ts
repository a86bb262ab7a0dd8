import { describe, expect, it } from 'vitest';
import { rawPath } from '../src/http/app.ts';
import { makeLogger } from '../src/log.ts';
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

describe('the cache-hit fast paths say exactly what the general paths say', () => {
  it('rawPath recognises a route only where URL parsing would give the same path', () => {
    for (const u of [
      'http://127.0.0.1:8080/refresh',
      'http://127.0.0.1:8080/refresh?authid=x',
      'http://h/refresh#frag',
      'http://h/a/../refresh',
      'http://h/%72efresh',
      'https://user@h:1/refresh?x=/y',
      'http://h/',
    ]) {
      const raw = rawPath(u);
      if (raw === '/refresh' || raw === '/') expect(raw).toBe(new URL(u).pathname);
    }
    // A host that a URL parser ends early is not trusted for the path.
    expect(rawPath('http://a?b/refresh')).toBeNull();
    expect(rawPath('http://a#b/refresh')).toBeNull();
    expect(rawPath('http://a\\b/refresh')).toBeNull();
    expect(rawPath('not a url')).toBeNull();
  });

  it("a request's log line is the same from the fast path and the general one", () => {
    const lines: string[] = [];
    const log = makeLogger(
      'text',
      (l) => lines.push(l),
      () => 1_700_000_000_123,
    );
    const fields = { method: 'GET', route: '/refresh', status: 200, ms: 0.05, keyid: 'bk1abcdefgh' };
    log.request(fields);
    log.info('request', fields);
    log.request({ ...fields, status: 503 });
    log.warn('request', { ...fields, status: 503 });
    log.request({ ...fields, keyid: undefined });
    log.info('request', { ...fields, keyid: undefined });
    log.request({ ...fields, method: 'GE T\n' });
    log.info('request', { ...fields, method: 'GE T\n' });
    for (let i = 0; i < lines.length; i += 2) expect(lines[i]).toBe(lines[i + 1]);
    expect(lines[6]).toContain('method=GE_T?');
  });
});
