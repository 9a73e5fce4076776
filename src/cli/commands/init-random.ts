/** `wct init-random`: a Hugging Face checkpoint of a real model's shapes with random weights. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { PRESETS, initRandom, type Preset, type SizeOverrides } from '../../models/init-random.js';
import { claimOutputDir } from '../../io/output-dir.js';
import { SIZE_LIMITS } from '../../models/families/config-fields.js';
import { addNumberOptions, checkNumberOptions, intOption, MAX_SEED, type NumberOption } from '../number-options.js';
import { runHandler } from '../run.js';

interface InitRandomArgs extends SizeOverrides {
  like: Preset;
  out: string;
  seed: number;
  initStd?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  force: boolean;
}

// the sizes have config.json's bounds (SIZE_LIMITS); the config they make is checked as a whole when parsed
const NUMBERS: Record<string, NumberOption> = {
  layers: intOption('Number of decoder layers (default: the real count)', 1, SIZE_LIMITS.layers),
  'hidden-size': intOption('hidden_size (default: the real one)', 1, SIZE_LIMITS.width),
  'intermediate-size': intOption(
    'MLP width: intermediate_size (Llama) or ffn_dim (OPT) (default: the real one)',
    1,
    SIZE_LIMITS.mlpWidth,
  ),
  'num-heads': intOption(
    'num_attention_heads; must divide hidden_size (default: the real count)',
    1,
    SIZE_LIMITS.heads,
  ),
  'num-kv-heads': intOption(
    'Llama num_key_value_heads; must divide --num-heads (default: the real count)',
    1,
    SIZE_LIMITS.heads,
  ),
  'head-dim': intOption(
    'Llama head_dim, even (default: the real one, or hidden_size / num_attention_heads)',
    1,
    SIZE_LIMITS.headDim,
  ),
  seed: intOption('RNG seed', 0, MAX_SEED, 0),
  'init-std': {
    describe: 'Standard deviation of the random matrices and embeddings (default 0.02)',
    min: 0,
    minExclusive: true,
  },
};

export const initRandomCommand: CommandModule<object, InitRandomArgs> = {
  command: 'init-random',
  describe: 'Write a checkpoint with the real shapes of a known model and random weights',
  builder: (y: Argv) =>
    addNumberOptions(y, NUMBERS)
      .option('like', { choices: PRESETS, demandOption: true, describe: 'Which model shapes to copy' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory' })
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
    checkNumberOptions(args, NUMBERS);
    const sizes: SizeOverrides = {
      layers: args.layers,
      hiddenSize: args.hiddenSize,
      intermediateSize: args.intermediateSize,
      numHeads: args.numHeads,
      numKvHeads: args.numKvHeads,
      headDim: args.headDim,
    };
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
