/**
 * `wct init-random`: a Hugging Face checkpoint of a real model's shapes with random weights, written tensor by
 * tensor (one model.safetensors, or shards of at most --shard-size with model.safetensors.index.json).
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { PRESETS, initRandom, type Preset, type SizeOverrides } from '../../models/init-random.js';
import { OptionError } from '../../errors.js';
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
  shardSize: string;
  force: boolean;
}

/** Size units as transformers' convert_file_size_to_int reads them: decimal KB/MB/GB, binary KiB/MiB/GiB. */
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
};

/** `--shard-size` ("10GB", "500MiB", "4096") in bytes; anything else is an OptionError naming the flag. */
export function parseShardSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m === null ? undefined : SIZE_UNITS[m[2].toUpperCase()];
  const bytes = m === null || unit === undefined ? Number.NaN : Math.floor(Number(m[1]) * unit);
  if (!(bytes >= 1 && Number.isSafeInteger(bytes)))
    throw new OptionError(
      '--shard-size',
      `expected a size such as 10GB, 500MB, 2GiB or a byte count, got ${JSON.stringify(text)}`,
    );
  return bytes;
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
      .option('shard-size', {
        type: 'string',
        default: '10GB',
        describe:
          'Largest shard (KB/MB/GB decimal, KiB/MiB/GiB binary, or bytes): a bigger model is written as ' +
          'model-0000i-of-0000n.safetensors with model.safetensors.index.json, as save_pretrained does (10GB: llama-7b in two shards)',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Replace an existing output directory written by this tool',
      }) as unknown as Argv<InitRandomArgs>,
  handler: runHandler((args: ArgumentsCamelCase<InitRandomArgs>) => {
    checkNumberOptions(args, NUMBERS);
    const shardBytes = parseShardSize(args.shardSize);
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
      shardBytes,
      ...sizes,
    });
    out.finish();
    process.stdout.write(`wrote ${files.join(', ')}\n`);
  }),
};
