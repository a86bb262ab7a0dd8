#!/usr/bin/env bun
import { VERSION } from '../src/version.ts';

const args = process.argv.slice(2);
// `--version` needs none of the CLI: answer before loading it (commander, sodium, SQLite, conf, prom-client).
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  // console.log, not process.stdout: making that stream loads Node's stream modules, which cost more than the rest of this start-up.
  console.log(VERSION);
} else if (args[0] === 'list' && (args.length === 1 || (args.length === 2 && args[1] === '--json'))) {
  // `list` and `list --json` exactly, without commander (src/cli/quick.ts); anything else about list goes to main.
  const { quickList } = await import('../src/cli/quick.ts');
  process.exitCode = await quickList(args);
} else {
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(args);
}
