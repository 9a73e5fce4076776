/**
 * `wct export`: a packed checkpoint (with tuned weak-column deltas baked in when given) written as a plain Hugging
 * Face checkpoint (src/io/export-hf.ts): every packed weight dequantized, Ŵ = packed part + weak columns +
 * outliers, as `<name>.weight` in F16 or BF16 (rounded to nearest even where Ŵ is not exact in it); every other
 * tensor as stored; config.json without quantization_config. Loadable by transformers and by loadModel. Only
 * `--format hf` is built.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { OptionError } from '../../errors.js';
import { openCheckpoint } from '../../io/checkpoint.js';
import { EXPORT_DTYPES, type ExportDtype, writeExportedHf } from '../../io/export-hf.js';
import { isPackedCheckpoint, packedLayouts, readPackedLinear, readQuantConfig } from '../../io/packed-checkpoint.js';
import { expectedTensorShapes } from '../../models/checkpoint-tensors.js';
import { packedLinearsOf } from '../../models/weak-deltas.js';
import type { PackedWeight } from '../../native/packed.js';
import { loadModelDir } from '../model-dir.js';
import { runHandler } from '../run.js';
import { checkpointDirArg, FORCE_OPTION, writeClaimedOut } from './merge.js';

export const EXPORT_FORMATS = ['hf', 'gptq', 'gguf'] as const;

interface ExportArgs {
  model: string;
  deltas?: string;
  format: (typeof EXPORT_FORMATS)[number];
  out: string;
  dtype: ExportDtype;
  force: boolean;
}

/**
 * Every packed module of the packed checkpoint `dir` by module name: the quantized linears as loaded (with
 * `deltas` over their weak columns and outliers), then any packed embedding tables (no weak columns to tune).
 */
function packedWeights(dir: string, deltas: string | undefined): Map<string, PackedWeight> {
  const { model } = loadModelDir(dir, deltas);
  const linears = packedLinearsOf(model);
  const shapes = expectedTensorShapes(model.config);
  const out = new Map<string, PackedWeight>();
  const ckpt = openCheckpoint(dir);
  try {
    for (const [name, layout] of packedLayouts(readQuantConfig(dir))) {
      out.set(name, linears.get(name)?.packed ?? readPackedLinear(ckpt, name, shapes.get(`${name}.weight`)!, layout));
    }
  } finally {
    ckpt.close();
  }
  return out;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe: 'Write a packed checkpoint (with --deltas baked in) dequantized, as a plain Hugging Face checkpoint',
  builder: (y: Argv) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Packed checkpoint directory (wct quantize)' })
      .option('deltas', {
        type: 'string',
        describe: 'Weak-column deltas (wct-train output) to bake into the exported weights',
      })
      .option('format', {
        choices: EXPORT_FORMATS,
        default: 'hf' as const,
        describe: 'Output format: hf = model.safetensors + config.json + tokenizer (gptq and gguf are not built yet)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory for the exported checkpoint' })
      .option('dtype', {
        choices: EXPORT_DTYPES,
        default: 'F16' as const,
        describe:
          'Dtype of the dequantized weights (Ŵ rounded to nearest even where not exact in it); the other tensors keep their stored dtype',
      })
      .option('force', FORCE_OPTION) as unknown as Argv<ExportArgs>,
  handler: runHandler((args: ArgumentsCamelCase<ExportArgs>) => {
    if (args.format !== 'hf')
      throw new OptionError('--format', `${args.format}: gptq and gguf are not built yet (use --format hf)`);
    const modelDir = checkpointDirArg(args.model);
    if (!isPackedCheckpoint(modelDir)) {
      throw new OptionError(
        '--model',
        `${args.model} is not a packed checkpoint (no quantization_config.json): wct export dequantizes a wct quantize output`,
      );
    }
    const n = writeClaimedOut(args, 'wct export', [modelDir, args.deltas], (dir) =>
      writeExportedHf(dir, modelDir, packedWeights(modelDir, args.deltas), args.dtype, 'wct export'),
    );
    const tuned = args.deltas === undefined ? '' : ` with ${args.deltas}`;
    process.stdout.write(`wrote ${args.out}: ${n} weights of ${args.model}${tuned} dequantized to ${args.dtype}\n`);
  }),
};
