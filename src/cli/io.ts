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

export function processIo(): Io {
  return {
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
    env: process.env,
    isTTY: Boolean(process.stdin.isTTY && process.stdout.isTTY),
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
