import { writeSync } from 'node:fs';

/** What a command may touch of its process: passed in so commands run inside tests. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  isTTY: boolean;
  readStdin(): Promise<string>;
  /** One line from stdin, or '' when stdin ends or the time is up. */
  readLine(timeoutMs: number): Promise<string>;
}

/**
 * The process's own streams. `process.stdin`/`process.stdout` are made on first
 * use and load Node's stream machinery (several ms of a short command's start-up):
 * stdout and stderr are written with write(2) directly (synchronous, as Node's own
 * streams are for files and pipes on Linux), and the terminal check asks isatty(3)
 * only when a command wants to know.
 */
export function processIo(): Io {
  return {
    out: (t) => writeFd(1, t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => writeFd(2, t.endsWith('\n') ? t : `${t}\n`),
    env: process.env,
    get isTTY() {
      // node:tty loads the stream modules too: only `init` asks, so only it pays.
      const { isatty } = require('node:tty') as typeof import('node:tty');
      return isatty(0) && isatty(1);
    },
    readStdin: () => new Response(Bun.stdin.stream()).text(),
    readLine: (timeoutMs) => readLine(timeoutMs),
  };
}

async function readLine(timeoutMs: number): Promise<string> {
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: process.stdin, terminal: false });
  try {
    return await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve(''), timeoutMs);
      rl.once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      rl.once('close', () => {
        clearTimeout(timer);
        resolve('');
      });
    });
  } finally {
    rl.close();
    process.stdin.pause();
  }
}

/** After a write(2) that would block (a non-blocking pipe), everything on that descriptor goes through its stream, in order. */
const viaStream = { 1: false, 2: false };

function writeFd(fd: 1 | 2, text: string): void {
  const stream = () => (fd === 1 ? process.stdout : process.stderr);
  if (viaStream[fd]) {
    stream().write(text);
    return;
  }
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // The reader went away (`broker list | head -1`): nothing more to say.
      if (code === 'EPIPE') return;
      if (code !== 'EAGAIN') throw e;
      viaStream[fd] = true;
      stream().write(buf.subarray(off));
      return;
    }
  }
}
