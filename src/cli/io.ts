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

let writeSync: typeof import('node:fs').writeSync | undefined;
const encoder = new TextEncoder();
/** Reused for every write: serve's log writes a batch of lines per event-loop turn, and a fresh Buffer each time showed in its profile. */
let scratch = new Uint8Array(16 * 1024);

function writeFd(fd: 1 | 2, text: string): void {
  // Required on first use, not imported: node:fs takes a millisecond to load, which `broker list` (bufferedIo) does without.
  writeSync ??= (require('node:fs') as typeof import('node:fs')).writeSync;
  const stream = () => (fd === 1 ? process.stdout : process.stderr);
  if (viaStream[fd]) {
    stream().write(text);
    return;
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes; a rare large text (a long `list --json`) gets a buffer of its own.
  const most = text.length * 3;
  if (most > scratch.length && most <= 1 << 20) scratch = new Uint8Array(most);
  const buf = most <= scratch.length ? scratch.subarray(0, encoder.encodeInto(text, scratch).written) : Buffer.from(text);
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
      // A copy: the stream writes later, and the scratch buffer is reused by then.
      stream().write(buf.slice(off));
      return;
    }
  }
}

/** An Io that keeps what is written until `flush`. */
export interface BufferedIo extends Io {
  /** Writes what was kept, stderr first, and forgets it; a reader that went away (EPIPE) is no error. */
  flush(): Promise<void>;
}

/**
 * `io` with out and err kept until `flush`, then written with one Bun.write each
 * (which waits out a non-blocking pipe): for `broker list`, whose output is all
 * known at the end, so that it loads no node:fs and makes one write(2), not one a line.
 */
export function bufferedIo(io: Io): BufferedIo {
  const kept = { out: [] as string[], err: [] as string[] };
  const keep = (to: string[], t: string) => {
    to.push(t.endsWith('\n') ? t : `${t}\n`);
  };
  const write = async (to: string[], file: typeof Bun.stdout) => {
    const text = to.join('');
    to.length = 0;
    if (!text) return;
    try {
      await Bun.write(file, text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
    }
  };
  return {
    out: (t) => keep(kept.out, t),
    err: (t) => keep(kept.err, t),
    env: io.env,
    get isTTY() {
      return io.isTTY;
    },
    readStdin: () => io.readStdin(),
    readLine: (timeoutMs) => io.readLine(timeoutMs),
    flush: async () => {
      await write(kept.err, Bun.stderr);
      await write(kept.out, Bun.stdout);
    },
  };
}
