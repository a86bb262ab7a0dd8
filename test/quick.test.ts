/**
 * `broker list`'s short way (src/cli/quick.ts) finds BROKER_HOME without
 * node:path: where it answers, it must be where brokerHome (home.ts) looks; where
 * path.join would rewrite the path, it leaves the answer to brokerHome.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quickHome } from '../src/cli/quick.ts';
import { brokerHome } from '../src/config/home.ts';
import { OPTIONS } from '../src/config/options.ts';

describe('quickHome', () => {
  it.each([
    { BROKER_HOME: '/srv/broker' },
    { BROKER_HOME: '/srv/broker', XDG_CONFIG_HOME: '/x', HOME: '/home/u' },
    { XDG_CONFIG_HOME: '/home/u/.cfg', HOME: '/home/u' },
    { HOME: '/home/u' },
    { HOME: '/home/u', XDG_CONFIG_HOME: '' },
    { HOME: '/home/u', BROKER_HOME: '' },
    { HOME: '/home/a.b/...' },
  ])('%j: where brokerHome looks', (env) => {
    expect(quickHome(env)).toBe(brokerHome(env));
  });

  it.each([
    { BROKER_HOME: 'relative/home' },
    { BROKER_HOME: '/srv/broker/' },
    { BROKER_HOME: '/srv//broker' },
    { BROKER_HOME: '/srv/./broker' },
    { BROKER_HOME: '/srv/x/../broker' },
    { BROKER_HOME: '/srv/..' },
    { BROKER_HOME: '/' },
    { XDG_CONFIG_HOME: '/cfg/', HOME: '/home/u' },
    { HOME: '/home/u/' },
    { HOME: '' },
    {},
  ])('%j: left to brokerHome, which normalises it', (env) => {
    expect(quickHome(env)).toBeNull();
  });

  it('the plain paths it takes are those path.join leaves as they are', () => {
    for (const p of ['/a', '/a/b', '/a/.b', '/a/..b', '/a/b..', '/a/...']) {
      expect(quickHome({ BROKER_HOME: p })).toBe(join(p));
    }
  });

  it('knows the variable that names a PostgreSQL store', () => {
    // quick.ts tests env.BROKER_DATABASE_URL by name, so as not to load options.ts.
    expect(OPTIONS.databaseUrl.env).toBe('BROKER_DATABASE_URL');
  });
});
