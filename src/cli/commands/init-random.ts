/** `wct init-random`: a Hugging Face checkpoint of a real model's shapes with random weights. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { PRESETS, initRandom, type Preset, type SizeOverrides } from '../../models/init-random.js';
import { OptionError } from '../../errors.js';
import { claimOutputDir } from '../../io/output-dir.js';
import { runHandler } from '../run.js';

interface InitRandomArgs extends SizeOverrides {
  like: Preset;
  out: string;
  seed: number;
  initStd?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  force: boolean;
}

const SIZE_FLAGS: Record<keyof SizeOverrides, string> = {
  layers: '--layers',
  hiddenSize: '--hidden-size',
  intermediateSize: '--intermediate-size',
  numHeads: '--num-heads',
  numKvHeads: '--num-kv-heads',
};

export const initRandomCommand: CommandModule<object, InitRandomArgs> = {
  command: 'init-random',
  describe: 'Write a checkpoint with the real shapes of a known model and random weights',
  builder: (y: Argv) =>
    y
      .option('like', { choices: PRESETS, demandOption: true, describe: 'Which model shapes to copy' })
      .option('layers', { type: 'number', describe: 'Number of decoder layers (default: the real count)' })
      .option('hidden-size', { type: 'number', describe: 'hidden_size (default: the real one)' })
      .option('intermediate-size', {
        type: 'number',
        describe: 'MLP width: intermediate_size (Llama) or ffn_dim (OPT) (default: the real one)',
      })
      .option('num-heads', {
        type: 'number',
        describe: 'num_attention_heads; must divide hidden_size (default: the real count)',
      })
      .option('num-kv-heads', {
        type: 'number',
        describe: 'Llama num_key_value_heads; must divide --num-heads (default: the real count)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory' })
      .option('seed', { type: 'number', default: 0, describe: 'RNG seed' })
      .option('init-std', {
        type: 'number',
        describe: 'Standard deviation of the random matrices and embeddings (default 0.02)',
      })
      .option('dtype', {
        choices: ['F32', 'F16', 'BF16'] as const,
        describe: 'Stored dtype (default: the real checkpoint’s)',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Replace an existing output directory written by this tool',
      }) as unknown as Argv<InitRandomArgs>,
  handler: runHandler((args: ArgumentsCamelCase<InitRandomArgs>) => {
    const sizes: SizeOverrides = {
      layers: args.layers,
      hiddenSize: args.hiddenSize,
      intermediateSize: args.intermediateSize,
      numHeads: args.numHeads,
      numKvHeads: args.numKvHeads,
    };
    for (const [option, flag] of Object.entries(SIZE_FLAGS) as [keyof SizeOverrides, string][]) {
      const value = sizes[option];
      if (value !== undefined && !(Number.isInteger(value) && value >= 1))
        throw new OptionError(flag, 'expected a positive integer');
    }
    if (args.initStd !== undefined && !(args.initStd > 0 && Number.isFinite(args.initStd))) {
      throw new OptionError('--init-std', 'expected a positive number');
    }
    const out = claimOutputDir(args.out, {
      option: '--out',
      command: 'wct init-random',
      inputs: [],
      mode: 'replace',
      force: args.force,
      note: (line) => process.stderr.write(`${line}\n`),
    });
    const files = initRandom({
      like: args.like,
      out: out.dir,
      writtenBy: 'wct init-random',
      seed: args.seed,
      initStd: args.initStd,
      dtype: args.dtype,
      ...sizes,
    });
    out.finish();
    process.stdout.write(`wrote ${files.join(', ')}\n`);
  }),
};
