#!/usr/bin/env bun
import { VERSION } from '../src/version.ts';

const args = process.argv.slice(2);
// `--version` needs none of the CLI: answer before loading it (commander, sodium, SQLite, conf, prom-client).
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(args);
}
