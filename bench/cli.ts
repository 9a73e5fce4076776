/**
 * The bench scripts' command line: `--help` (what the bench measures and writes), strict flags, and one line on
 * stderr for a bad command line (exit 1, before any bench runs): `usage: USAGE (got ARGS)`, the format
 * test/e2e/bench-device.test.ts pins for `npm run bench`. A flag given twice is refused (it would be a list).
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { exitWithError } from '../src/cli/run.js';
import { OptionError } from '../src/errors.js';

export interface BenchCli<T> {
  /** The invocation with its flags, e.g. `npm run bench [-- --device cpu|gpu]`. */
  usage: string;
  /** What the bench measures and what it writes (bench/results/...), shown by --help. */
  describe: string;
  /** The bench's flags (none when absent). */
  options?: (y: Argv) => Argv<T>;
}

/** Whether the module at `url` (its import.meta.url) is the script node was started with, not an import. */
export function isEntryPoint(url: string): boolean {
  return process.argv[1] !== undefined && url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
}

function refuseRepeats(args: Record<string, unknown>): true {
  for (const [key, v] of Object.entries(args)) {
    if (key !== '_' && Array.isArray(v)) throw new OptionError(`--${key}`, `given ${v.length} times; expected one`);
  }
  return true;
}

/** Parses the command line by `cli`; --help prints and exits 0, a bad command line prints the usage line, exit 1. */
export function parseBenchArgs<T = object>(cli: BenchCli<T>, argv: string[] = hideBin(process.argv)): T {
  const y = yargs(argv).usage(`${cli.usage}\n\n${cli.describe}`).wrap(Math.min(120, yargs().terminalWidth()));
  return (cli.options === undefined ? y : cli.options(y))
    .check(refuseRepeats)
    .strict()
    .fail((_msg: string | null, err: Error | undefined) => {
      // yargs' own parse errors (YError: a flag without its value) are usage errors like the unknown flags
      if (err !== undefined && err.name !== 'YError') exitWithError(err);
      process.stderr.write(`usage: ${cli.usage} (got ${argv.join(' ')})\n`);
      process.exit(1);
    })
    .help()
    .alias('h', 'help')
    .parseSync() as T;
}
