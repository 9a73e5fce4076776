/**
 * `wct export`: a packed checkpoint (with tuned weak-column deltas baked in when given) written in a format other
 * runtimes load, one module per format:
 * - `hf` (src/export/hf.ts): every packed weight dequantized, Ŵ = packed part + weak columns + outliers, as
 *   `<name>.weight` in F16 or BF16; every other tensor as stored; config.json without quantization_config.
 * - `gptq` (src/export/gptq.ts): the AutoGPTQ / GPTQModel layout, an OWQ base's weak columns as a PEFT adapter.
 * - `gguf` (src/export/gguf.ts): one llama.cpp GGUF file, the linears in Q8_0, Q4_0 or Q4_1.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { OptionError } from '../../errors.js';
import { openCheckpoint } from '../../io/checkpoint.js';
import { GGUF_TYPES, type GgufType, writeExportedGguf } from '../../export/gguf.js';
import { writeExportedGptq } from '../../export/gptq.js';
import { EXPORT_DTYPES, type ExportDtype, writeExportedHf } from '../../export/hf.js';
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
  dtype?: ExportDtype;
  ggufType?: GgufType;
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

/** Writes the export of `args.format` into `dir`; returns the summary line's text after the directory. */
function writeFormat(
  args: ExportArgs,
  dir: string,
  modelDir: string,
  packed: Map<string, PackedWeight>,
  what: string,
): string {
  switch (args.format) {
    case 'hf': {
      const dtype = args.dtype ?? 'F16';
      const n = writeExportedHf(dir, modelDir, packed, dtype, 'wct export');
      return `${n} weights of ${what} dequantized to ${dtype}`;
    }
    case 'gptq': {
      const g = writeExportedGptq(dir, modelDir, packed, 'wct export');
      const adapter = g.adapterDir === undefined ? '' : `; weak columns as the PEFT adapter ${g.adapterDir}`;
      return `${g.linears} linears of ${what} in the GPTQ layout${adapter}`;
    }
    case 'gguf': {
      const type = args.ggufType ?? 'Q8_0';
      const g = writeExportedGguf(dir, modelDir, packed, type, 'wct export');
      return `${g.file}: ${g.tensors} tensors of ${what}, linears in ${type}`;
    }
  }
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe:
    'Export a packed checkpoint (with --deltas baked in) for other runtimes: a dequantized Hugging Face checkpoint, the GPTQ layout (+ weak columns as a PEFT adapter), or GGUF',
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
        describe:
          'Output format: hf = dequantized model.safetensors + config.json + tokenizer; gptq = AutoGPTQ/GPTQModel layout (+ weak columns as a PEFT adapter); gguf = one llama.cpp file',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory for the exported checkpoint' })
      .option('dtype', {
        choices: EXPORT_DTYPES,
        describe:
          '--format hf: dtype of the dequantized weights (Ŵ rounded to nearest even where not exact in it; default F16); the other tensors keep their stored dtype',
      })
      .option('gguf-type', {
        choices: GGUF_TYPES,
        describe: '--format gguf: tensor type of the linears (default Q8_0; blocks of 32)',
      })
      .option('force', FORCE_OPTION) as unknown as Argv<ExportArgs>,
  handler: runHandler((args: ArgumentsCamelCase<ExportArgs>) => {
    if (args.dtype !== undefined && args.format !== 'hf') {
      throw new OptionError('--dtype', `applies to --format hf only (this export is --format ${args.format})`);
    }
    if (args.ggufType !== undefined && args.format !== 'gguf') {
      throw new OptionError('--gguf-type', `applies to --format gguf only (this export is --format ${args.format})`);
    }
    const modelDir = checkpointDirArg(args.model);
    if (!isPackedCheckpoint(modelDir)) {
      throw new OptionError(
        '--model',
        `${args.model} is not a packed checkpoint (no quantization_config.json): wct export dequantizes a wct quantize output`,
      );
    }
    const what = `${args.model}${args.deltas === undefined ? '' : ` with ${args.deltas}`}`;
    const summary = writeClaimedOut(args, 'wct export', [modelDir, args.deltas], (dir) =>
      writeFormat(args, dir, modelDir, packedWeights(modelDir, args.deltas), what),
    );
    process.stdout.write(`wrote ${args.out}: ${summary}\n`);
  }),
};
