#!/usr/bin/env node
/** `wct`: the project's command line (one file per command in ./commands). */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { chatCommand } from './commands/chat.js';
import { compareCommand } from './commands/compare.js';
import { envCommand } from './commands/env.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { generateCommand } from './commands/generate.js';
import { initRandomCommand } from './commands/init-random.js';
import { mergeCommand } from './commands/merge.js';
import { quantizeCommand } from './commands/quantize.js';
import { serveCommand } from './commands/serve.js';
import { addRuntimeOptions } from './runtime-options.js';
import { failWith } from './run.js';

await addRuntimeOptions(yargs(hideBin(process.argv)).scriptName('wct'), 'wct')
  .command(generateCommand)
  .command(compareCommand)
  .command(evalCommand)
  .command(initRandomCommand)
  .command(quantizeCommand)
  .command(mergeCommand)
  .command(exportCommand)
  .command(serveCommand)
  .command(chatCommand)
  .command(envCommand)
  .demandCommand(1, 'Name a command (see --help).')
  .strict()
  .fail(failWith)
  .help()
  .alias('h', 'help')
  .parseAsync();
