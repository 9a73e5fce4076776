/** `wct init-random`: a Hugging Face checkpoint of a real model's shapes with random weights. */
import fs from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { PRESETS, initRandom, type Preset } from '../../models/init-random.js';
import { OptionError } from '../../errors.js';
import { runHandler } from '../run.js';

interface InitRandomArgs {
  like: Preset;
  layers?: number;
  out: string;
  seed: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  force: boolean;
}

export const initRandomCommand: CommandModule<object, InitRandomArgs> = {
  command: 'init-random',
  describe: 'Write a checkpoint with the real shapes of a known model and random weights',
  builder: (y: Argv) =>
    y
      .option('like', { choices: PRESETS, demandOption: true, describe: 'Which model shapes to copy' })
      .option('layers', { type: 'number', describe: 'Number of decoder layers (default: the real count)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory' })
      .option('seed', { type: 'number', default: 0, describe: 'RNG seed' })
      .option('dtype', { choices: ['F32', 'F16', 'BF16'] as const, describe: 'Stored dtype (default: the real checkpoint’s)' })
      .option('force', { type: 'boolean', default: false, describe: 'Overwrite files in an existing directory' }) as unknown as Argv<InitRandomArgs>,
  handler: runHandler((args: ArgumentsCamelCase<InitRandomArgs>) => {
    if (args.layers !== undefined && !(Number.isInteger(args.layers) && args.layers >= 1)) {
      throw new OptionError('--layers', 'expected a positive integer');
    }
    if (fs.existsSync(args.out) && fs.readdirSync(args.out).length > 0 && !args.force) {
      throw new OptionError('--out', `${args.out} exists and is not empty (use --force to overwrite)`);
    }
    const files = initRandom({ like: args.like, out: args.out, layers: args.layers, seed: args.seed, dtype: args.dtype });
    process.stdout.write(`wrote ${files.join(', ')}\n`);
  }),
};
