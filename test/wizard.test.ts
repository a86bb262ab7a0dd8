/**
 * `broker init` as a person meets it: the compiled binary on a real terminal
 * (a tmux pane), answered key by key, read back from the screen.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateHttpUrl } from '../src/config/settings.ts';
import { SqliteStore } from '../src/store/store.ts';
import { BINARY, newHome, run } from './support/binary.ts';
import { missingCommand, unavailable } from './support/requires.ts';
import { fakeKeyid } from './support/authid.ts';

const CLIENT_ID = '0f1e2d3c-4b5a-4978-8675-a1b2c3d4e5f6';
const SECRET_ID = '2b5c8f3e-1d2a-4c3b-9e8f-7a6b5c4d3e2f';
const SECRET_VALUE = 'Qx8~wizard.secret-Value_123';

const noTmux = unavailable('wizard.test.ts', 'the terminal tests', missingCommand('tmux', ['-V']));

// A private tmux server (own socket, no config): never the developer's own sessions; killed and removed at the end.
const SOCKET_DIR = mkdtempSync(join(tmpdir(), 'broker-tmux-'));
let sessions = 0;
const tmux = (...args: string[]) => spawnSync('tmux', ['-S', join(SOCKET_DIR, 'socket'), '-f', '/dev/null', ...args], { encoding: 'utf8', timeout: 10_000 });

afterAll(() => {
  if (!noTmux) tmux('kill-server');
  rmSync(SOCKET_DIR, { recursive: true, force: true });
});

const shellQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

class Pane {
  private constructor(readonly name: string) {}

  /** Starts `broker init` in a 120x50 terminal; the exit code is printed after it. */
  static start(home: string): Pane {
    const name = `wizard-${++sessions}`;
    // env -i: no BROKER_* of the developer's shell can answer a question for us.
    const command = `env -i PATH="$PATH" HOME="$HOME" TERM="$TERM" LANG=C.UTF-8 BROKER_HOME=${shellQuote(home)} ${shellQuote(BINARY)} init; echo EXIT=$?; sleep 5`;
    const r = tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '50', command);
    if (r.status !== 0) throw new Error(`tmux new-session failed: ${r.stderr}`);
    return new Pane(name);
  }

  /** Everything printed so far, scrollback included, wrapped lines joined. */
  screen(): string {
    return tmux('capture-pane', '-p', '-J', '-S', '-', '-t', this.name).stdout;
  }

  /** Waits (bounded) until the screen matches; returns the screen. */
  async waitFor(pattern: RegExp | string, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      if (typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s)) return s;
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${pattern} on the terminal:\n${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Types text as is (no key names), then presses Enter unless told not to. */
  type(text: string, enter = true): void {
    if (text) tmux('send-keys', '-t', this.name, '-l', text);
    if (enter) this.keys('Enter');
  }

  keys(...keys: string[]): void {
    tmux('send-keys', '-t', this.name, ...keys);
  }

  /** Waits for the question to be asked (a pending `? question` line), then types the answer. */
  async answer(question: string, text: string): Promise<void> {
    await this.waitFor(asked(question));
    this.type(text);
  }

  async exitCode(): Promise<number> {
    const s = await this.waitFor(/EXIT=\d+/);
    return Number(/EXIT=(\d+)/.exec(s)![1]);
  }

  kill(): void {
    tmux('kill-session', '-t', this.name);
  }
}

/** The line of the screen that holds `text` (the last one, as the screen scrolls down). */
const lineWith = (screen: string, text: string) => screen.split('\n').findLast((l) => l.includes(text)) ?? '';
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A question being asked: inquirer's `? ` line (the Entra steps mention some of the same words, indented). */
/** The providers question: Enter keeps what is ticked (Microsoft on a fresh install, the apps already set up on a rerun). */
async function acceptProviders(pane: Pane): Promise<void> {
  await pane.waitFor(asked('Set up the apps of which providers?'));
  pane.keys('Enter');
}

const asked = (question: string) => new RegExp(`^\\? ${escapeRe(question)}`, 'm');
/** A question answered: its line now starts with a check mark instead. */
const answered = (question: string) => new RegExp(`^[^?\\s] ${escapeRe(question)}`, 'm');
/** In a list, the chosen line starts with the pointer, the others with spaces. */
const isSelected = (screen: string, choice: string) => /^\S/.test(lineWith(screen, choice));

/** Settings written without a terminal, for the re-run and cancel tests. */
async function initNonInteractive(home: string): Promise<void> {
  const r = await run(
    [
      'init',
      '--non-interactive',
      '--client-id',
      CLIENT_ID,
      '--listen',
      '127.0.0.1:9090',
      '--public-url',
      'https://broker.example.org',
      '--tenant',
      'common',
      '--secret-expires',
      '2027-03-31',
      '--passcode',
      'old-passcode-123',
    ],
    { BROKER_HOME: home, BROKER_CLIENT_SECRET: SECRET_VALUE },
  );
  expect(r.code, r.stderr).toBe(0);
}

describe('the public URL must be HTTPS except on localhost (Microsoft refuses other http redirect URIs)', () => {
  it('validateHttpUrl', () => {
    for (const ok of ['https://broker.example.org', 'http://localhost:8080', 'http://127.0.0.1:8080', 'http://LOCALHOST']) {
      expect(validateHttpUrl(ok, 'public-url'), ok).toBeNull();
    }
    for (const bad of ['http://nas.local:8080', 'http://192.168.1.10', 'http://localhost.example.org', 'http://[::1]:8080']) {
      expect(validateHttpUrl(bad, 'public-url'), bad).toMatch(/HTTPS.*localhost and 127\.0\.0\.1 are allowed/);
    }
    // The identity platform itself may be a local test provider on http.
    expect(validateHttpUrl('http://127.0.0.2:9999', 'authority')).toBeNull();
  });

  it('`init --non-interactive --public-url http://nas.local:8080` exits 2 and says why', async () => {
    const home = newHome();
    const r = await run(['init', '--non-interactive', '--client-id', CLIENT_ID, '--public-url', 'http://nas.local:8080'], {
      BROKER_HOME: home,
      BROKER_CLIENT_SECRET: SECRET_VALUE,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/public-url must use HTTPS: Microsoft accepts http:\/\/ redirect URIs only for localhost/);
    expect(existsSync(join(home, 'settings.json'))).toBe(false);
  });
});

describe.skipIf(noTmux)('the init wizard on a terminal (tmux)', () => {
  it('asks everything in order, with the right defaults for a personal OneDrive, and refuses wrong answers', async () => {
    const home = newHome();
    const pane = Pane.start(home);
    try {
      // 1. Listen: default 127.0.0.1:8080.
      let screen = await pane.waitFor(asked('Listen on (HOST:PORT)'));
      expect(lineWith(screen, 'Listen on')).toContain('(127.0.0.1:8080)');
      pane.keys('Enter');

      // 2. Public URL: default http://localhost:8080; plain http elsewhere is refused.
      screen = await pane.waitFor(asked('Public URL'));
      expect(lineWith(screen, 'Public URL')).toContain('(http://localhost:8080)');
      pane.type('http://nas.local:8080');
      screen = await pane.waitFor('must use HTTPS');
      expect(screen).toContain('localhost and 127.0.0.1 are allowed');
      pane.keys('C-u');
      pane.keys('Enter'); // empty = the default

      // The Entra steps, with the exact redirect URI, then 3. account type: consumers preselected.
      await acceptProviders(pane);
      screen = await pane.waitFor('Work/school accounts only (organizations)');
      expect(screen).toMatch(asked('Which accounts does the app accept?'));
      expect(screen).toContain('Register your own Microsoft app');
      expect(screen).toMatch(/value exactly:\n\s+http:\/\/localhost:8080\/logged-in\n/);
      expect(isSelected(screen, 'Personal Microsoft accounts only (consumers)')).toBe(true);
      expect(isSelected(screen, 'Work/school and personal accounts (common)')).toBe(false);
      pane.keys('Enter');

      // 4. Client id: a non-GUID is refused.
      await pane.answer('Application (client) ID', 'my-app-name');
      await pane.waitFor('must be the Application (client) ID, a GUID');
      pane.keys('C-u');
      pane.type(CLIENT_ID);

      // 5. Secret Value (masked): the secret's ID, a GUID, is refused.
      screen = await pane.waitFor(asked('Client secret Value'));
      expect(screen).toContain('Not the "Secret ID"');
      pane.type(SECRET_ID);
      await pane.waitFor("looks like the secret's ID");
      pane.keys('C-u');
      pane.type(SECRET_VALUE);

      // 6. Expiry: a date or nothing.
      await pane.answer('Secret expiry date', '31.12.2026');
      await pane.waitFor('Use YYYY-MM-DD');
      pane.keys('C-u');
      pane.type('2026-12-31');

      // 7. Passcode: generating one is the first choice on a fresh install, and there is nothing to keep.
      screen = await pane.waitFor('Type my own');
      expect(screen).toMatch(asked('Connect passcode (needed to create connections)'));
      expect(screen).toContain('API permissions');
      expect(isSelected(screen, 'Generate a strong one and show it once')).toBe(true);
      expect(screen).not.toContain('Keep the current passcode');
      pane.keys('Enter');

      expect(await pane.exitCode()).toBe(0);
      screen = pane.screen();
      const order = [
        answered('Listen on (HOST:PORT)'),
        answered('Public URL'),
        /value exactly:\n\s+http:\/\/localhost:8080\/logged-in/,
        answered('Which accounts does the app accept?'),
        answered('Application (client) ID'),
        answered('Client secret Value'),
        answered('Secret expiry date'),
        answered('Connect passcode (needed to create connections)'),
        /^Settings written/m,
      ];
      const at = order.map((re) => screen.search(re));
      expect(
        at.every((i) => i >= 0),
        `${JSON.stringify(at)}\n${screen}`,
      ).toBe(true);
      expect([...at].sort((a, b) => a - b)).toEqual(at);

      // The passcode is shown once; the secret never.
      const shown = [...screen.matchAll(/Connect passcode \(shown once[^)]*\): (\S+)/g)].map((m) => m[1]!);
      expect(shown).toHaveLength(1);
      expect(screen.split(shown[0]!).length - 1).toBe(1);
      expect(screen).not.toContain(SECRET_VALUE);

      expect(statSync(join(home, 'settings.json')).mode & 0o777).toBe(0o600);
      const s = JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8')) as Record<string, unknown>;
      expect(s).toMatchObject({
        listen: '127.0.0.1:8080',
        publicUrl: 'http://localhost:8080',
        tenant: 'consumers',
        clientId: CLIENT_ID,
        clientSecret: SECRET_VALUE,
        secretExpires: '2026-12-31',
      });
      expect(String(s.passcodeHash)).toMatch(/^\$argon2id\$/);
    } finally {
      pane.kill();
    }
  });

  it('a second run offers the previous answers, keeps secret and passcode on Enter, and never loses connections', async () => {
    const home = newHome();
    await initNonInteractive(home);
    const before = JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8')) as Record<string, unknown>;
    // A connection row (dummy sealed bytes: list shows rows, it never opens them).
    const keyid = fakeKeyid();
    const store = SqliteStore.open(join(home, 'broker.db'));
    await store.insert({ keyid, service: 'onedrivev2', checkTag: new Uint8Array(32), sealed: new Uint8Array(64), now: Date.now() });
    await store.close();

    const pane = Pane.start(home);
    try {
      let screen = await pane.waitFor(asked('Listen on (HOST:PORT)'));
      expect(lineWith(screen, 'Listen on')).toContain('(127.0.0.1:9090)');
      pane.keys('Enter');
      screen = await pane.waitFor(asked('Public URL'));
      expect(lineWith(screen, 'Public URL')).toContain('(https://broker.example.org)');
      pane.keys('Enter');
      await acceptProviders(pane);
      screen = await pane.waitFor('Work/school accounts only (organizations)');
      expect(screen).toMatch(/value exactly:\n\s+https:\/\/broker\.example\.org\/logged-in\n/);
      expect(isSelected(screen, 'Work/school and personal accounts (common)')).toBe(true);
      expect(isSelected(screen, 'Personal Microsoft accounts only (consumers)')).toBe(false);
      pane.keys('Enter');
      screen = await pane.waitFor(asked('Application (client) ID'));
      expect(lineWith(screen, 'Application (client) ID')).toContain(`(${CLIENT_ID})`);
      pane.keys('Enter');
      screen = await pane.waitFor(asked('Keep the app secret recorded before?'));
      expect(lineWith(screen, 'Keep the app secret')).toContain('(Y/n)');
      pane.keys('Enter');
      screen = await pane.waitFor(asked('Secret expiry date'));
      expect(lineWith(screen, 'Secret expiry date')).toContain('(2027-03-31)');
      pane.keys('Enter');
      screen = await pane.waitFor('Type my own');
      expect(isSelected(screen, 'Keep the current passcode')).toBe(true);
      pane.keys('Enter');

      expect(await pane.exitCode()).toBe(0);
      screen = pane.screen();
      expect(screen).not.toMatch(/Connect passcode \(shown once/);
      expect(screen).not.toMatch(asked('Client secret Value'));
    } finally {
      pane.kill();
    }
    expect(JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8'))).toEqual(before);
    const list = await run(['list', '--json'], { BROKER_HOME: home });
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { keyid: string }[]).map((c) => c.keyid)).toEqual([keyid]);
  });

  it('a second run can replace the secret (expiry asked afresh) and the passcode (typed twice, or generated and shown once)', async () => {
    const home = newHome();
    await initNonInteractive(home);
    const settings = () => JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8')) as Record<string, unknown>;
    const throughToPasscode = async (pane: Pane, newSecret?: string) => {
      for (const q of ['Listen on (HOST:PORT)', 'Public URL']) {
        await pane.waitFor(asked(q));
        pane.keys('Enter');
      }
      await acceptProviders(pane);
      await pane.waitFor('Work/school accounts only (organizations)');
      pane.keys('Enter');
      await pane.answer('Application (client) ID', '');
      await pane.answer('Keep the app secret recorded before?', newSecret ? 'n' : '');
      if (newSecret) {
        await pane.answer('Client secret Value', newSecret);
        // The old date belonged to the old secret: no default now, and empty means unknown.
        const screen = await pane.waitFor(asked('Secret expiry date'));
        expect(lineWith(screen, 'Secret expiry date')).not.toContain('2027-03-31');
      }
      await pane.answer('Secret expiry date', '');
      await pane.waitFor('Type my own');
    };

    const typed = Pane.start(home);
    try {
      await throughToPasscode(typed, 'New~secret-Value_456');
      typed.keys('Down', 'Down', 'Enter');
      await typed.answer('Passcode (8+ characters)', 'first-passcode-1');
      await typed.answer('The same passcode again', 'typo-passcode-2');
      await typed.waitFor(/The two passcodes differ; type it again\.\n\? Passcode \(8\+ characters\)/);
      typed.type('new-passcode-99');
      await typed.answer('The same passcode again', 'new-passcode-99');
      expect(await typed.exitCode()).toBe(0);
      expect(typed.screen()).not.toContain('new-passcode-99');
    } finally {
      typed.kill();
    }
    let s = settings();
    expect(s.clientSecret).toBe('New~secret-Value_456');
    expect(s).not.toHaveProperty('secretExpires');
    expect(await Bun.password.verify('new-passcode-99', String(s.passcodeHash))).toBe(true);

    const generated = Pane.start(home);
    try {
      await throughToPasscode(generated);
      generated.keys('Down', 'Enter');
      expect(await generated.exitCode()).toBe(0);
      const screen = generated.screen();
      // Shown after the settings are written, so the passcode on the screen is the one that works.
      const m = /^Settings written[\s\S]*^Connect passcode \(shown once[^)]*\): (\S+)$/m.exec(screen);
      expect(m, screen).not.toBeNull();
      expect(screen.split(m![1]!).length - 1).toBe(1);
      s = settings();
      expect(await Bun.password.verify(m![1]!, String(s.passcodeHash))).toBe(true);
      expect(s.clientSecret).toBe('New~secret-Value_456');
    } finally {
      generated.kill();
    }
  });

  it('Ctrl-C in the middle exits 130, says nothing was changed, and leaves the settings byte for byte', async () => {
    const home = newHome();
    await initNonInteractive(home);
    const before = readFileSync(join(home, 'settings.json'));
    const pane = Pane.start(home);
    try {
      // Change two answers, then give up at the client id.
      await pane.answer('Listen on (HOST:PORT)', '127.0.0.1:7070');
      await pane.waitFor(asked('Public URL'));
      pane.keys('C-u');
      pane.type('http://localhost:7070');
      await acceptProviders(pane);
      await pane.waitFor('Work/school accounts only (organizations)');
      pane.keys('Enter');
      await pane.waitFor(asked('Application (client) ID'));
      pane.keys('C-c');
      expect(await pane.exitCode()).toBe(130);
      expect(pane.screen()).toContain('cancelled; nothing was changed');
    } finally {
      pane.kill();
    }
    expect(readFileSync(join(home, 'settings.json')).equals(before)).toBe(true);
  });

  it('sets up a Google app instead of Microsoft: the recipe says to publish the consent screen, and Microsoft is not asked', async () => {
    const home = newHome();
    const pane = Pane.start(home);
    try {
      await pane.answer('Listen on (HOST:PORT)', '');
      await pane.answer('Public URL', '');
      await pane.waitFor(asked('Set up the apps of which providers?'));
      pane.keys('Space', 'Down', 'Space', 'Enter');
      const screen = await pane.waitFor(asked('Google client id'));
      expect(screen).toContain('PUBLISH THE APP');
      expect(screen).toMatch(/exactly:\n\s+http:\/\/localhost:8080\/logged-in\n/);
      expect(screen).not.toContain('Register your own Microsoft app');
      pane.type('123-abc.apps.googleusercontent.com');
      await pane.answer('Google client secret', 'GOCSPX-wizard-secret');
      await pane.answer('Google secret expiry date', '');
      await pane.waitFor('Type my own');
      pane.keys('Enter');
      expect(await pane.exitCode()).toBe(0);
    } finally {
      pane.kill();
    }
    const s = JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8')) as Record<string, unknown>;
    expect(s).not.toHaveProperty('clientId');
    expect(s.providers).toEqual({ google: { clientId: '123-abc.apps.googleusercontent.com', clientSecret: 'GOCSPX-wizard-secret' } });
  });

  it('Ctrl-C on a fresh install leaves no settings behind', async () => {
    const home = newHome();
    const pane = Pane.start(home);
    try {
      await pane.answer('Listen on (HOST:PORT)', '');
      await pane.answer('Public URL', '');
      await acceptProviders(pane);
      await pane.waitFor('Work/school accounts only (organizations)');
      pane.keys('Enter');
      await pane.answer('Application (client) ID', CLIENT_ID);
      await pane.waitFor(asked('Client secret Value'));
      pane.keys('C-c');
      expect(await pane.exitCode()).toBe(130);
      expect(pane.screen()).toContain('cancelled; nothing was changed');
    } finally {
      pane.kill();
    }
    expect(existsSync(join(home, 'settings.json'))).toBe(false);
  });
});
