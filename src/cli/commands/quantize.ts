/**
 * `wct quantize`: a full-precision checkpoint quantized by a registered method (src/quant/methods.ts) and written
 * as a packed checkpoint (src/io/packed-checkpoint.ts), optionally evaluated right after from the written files.
 * Its quantization flags are the recipe's `model.quantize` fields (src/recipe/schema.ts), generated from there.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { OptionError } from '../../errors.js';
import { evaluateData } from '../../eval/evaluate-data.js';
import { claimOutputDir } from '../../io/output-dir.js';
import { resolveModelPath } from '../../io/hf-cache.js';
import { isPackedCheckpoint, type QuantConfig } from '../../io/packed-checkpoint.js';
import type { AwqBlockRecord } from '../../quant/awq.js';
import { methodNames, quantMethod } from '../../quant/methods.js';
import {
  quantizeCheckpoint,
  type QuantizeCheckpointResult,
  type QuantizeCheckpointRun,
} from '../../quant/quantize-checkpoint.js';
import { toQuantizeOptions } from '../../recipe/quantize-options.js';
import { quantizeSchema, quantizeShape } from '../../recipe/schema.js';
import { dataSetName } from '../../util/data-set-name.js';
import { loadModelDir, MODEL_DESCRIPTION } from '../model-dir.js';
import { Terminal } from '../progress.js';
import { runHandler } from '../run.js';
import { addDeviceOption, withDevice } from '../device-option.js';
import type { GpuContext } from '../../gpu/array.js';
import type { DeviceChoice } from '../../gpu/device.js';
import type { QuantizeOptions } from '../../quant/options.js';
import { addSchemaFlags, flagName, parseSchemaFlags } from '../schema-flags.js';

interface QuantizeArgs {
  model: string;
  out: string;
  force: boolean;
  resume: boolean;
  eval?: string;
  json: boolean;
  device: DeviceChoice;
  [flag: string]: unknown;
}

export const quantizeCommand: CommandModule<object, QuantizeArgs> = {
  command: 'quantize',
  describe: `Quantize a checkpoint (${methodNames().join(', ')}) and write a packed checkpoint, one decoder block in memory at a time (gwq and owq --sensitivity fisher read the whole model for their gradient pass); each finished block is kept in <out>.partial/ until the checkpoint is written`,
  builder: (y: Argv) =>
    addDeviceOption(addSchemaFlags(y, quantizeShape, { method: methodNames() }))
      // AWQ's own spelling: --no-scale / --no-clip
      .alias('awq-scale', 'scale')
      .alias('awq-clip', 'clip')
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: `Full-precision ${MODEL_DESCRIPTION.replace('Hugging Face checkpoint', 'checkpoint')}`,
      })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory for the packed checkpoint' })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: "Replace an existing output directory written by this tool (and discard an interrupted run's blocks)",
      })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe:
          'Continue an interrupted run from its last finished block (<out>.partial/; same model, options and calibration); the result is identical to an uninterrupted run',
      })
      .option('eval', {
        type: 'string',
        describe: 'Evaluate the written model on these (comma-separated: wikitext2,c4,PATH)',
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print the summary as JSON on stdout',
      }) as unknown as Argv<QuantizeArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<QuantizeArgs>) => {
    const options = toQuantizeOptions(parseSchemaFlags(args, quantizeShape, quantizeSchema));
    const model = resolveModelPath(args.model); // a Hugging Face id: its snapshot in the local cache
    const out = claimOutputDir(args.out, {
      option: '--out',
      command: 'wct quantize',
      inputs: [model, options.calibration.data, options.calibration.tokensFile, ...evalTexts(args.eval)],
      mode: 'replace',
      force: args.force,
      note: (line) => process.stderr.write(`${line}\n`),
    });
    if (isPackedCheckpoint(model)) throw new OptionError('--model', `${args.model} is already a packed checkpoint`);
    const terminal = new Terminal();
    // the model runs on the chosen device: the calibration forwards and Hessians, then the evaluations
    const { result, ppl } = await withDevice(
      args.device,
      (line) => terminal.log(line),
      async (gpu) => {
        const partial = args.resume ? 'resume' : args.force ? 'restart' : 'refuse';
        const result = await quantizeTo(model, out.dir, options, terminal, gpu, { partial });
        out.finish();
        const ppl: Record<string, number> = {};
        if (args.eval !== undefined) {
          const packedModel = loadModelDir(args.out);
          await packedModel.model.toDevice(gpu);
          for (const data of evalTexts(args.eval)) {
            const phase = terminal.start(`evaluation ${dataSetName(data)} (quantized)`);
            ppl[data] = (await evaluateData(packedModel.model, packedModel.tokenizer, data, { phase })).ppl;
          }
        }
        return { result, ppl };
      },
    );
    report(args, options, result, ppl);
  }),
};

/** quantizeCheckpoint with the library's option names turned into the command's flags in its errors. */
async function quantizeTo(
  model: string,
  outDir: string,
  options: QuantizeOptions,
  terminal: Terminal,
  gpu: GpuContext | null,
  streaming: Pick<QuantizeCheckpointRun, 'partial'>,
): Promise<QuantizeCheckpointResult> {
  try {
    return await quantizeCheckpoint(model, outDir, options, {
      force: true, // claimOutputDir decided whether the output may be replaced
      writtenBy: 'wct quantize',
      phases: terminal,
      gpu,
      ...streaming,
    });
  } catch (e) {
    // the library names its options as the recipe does; here they are flags
    if (e instanceof OptionError && !e.option.startsWith('--'))
      throw new OptionError(`--${flagName(e.option)}`, e.problem);
    throw e;
  } finally {
    terminal.close();
  }
}

/** The texts --eval names (comma-separated). */
function evalTexts(list: string | undefined): string[] {
  return (list ?? '').split(',').filter((d) => d !== '');
}

function report(
  args: QuantizeArgs,
  options: QuantizeOptions,
  result: QuantizeCheckpointResult,
  ppl: Record<string, number>,
): void {
  const { config: qc, nOut, seconds } = result;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const summary = {
    out: args.out,
    method: qc.method,
    bits: qc.bits,
    group_size: qc.group_size,
    tuning: qc.tuning,
    n_out: Object.fromEntries(nOut),
    embeddings: qc.embeddings ?? {},
    avg_bits: qc.avg_bits,
    ...(qc.awq === undefined ? {} : { awq_alpha: awqAlphas(qc.awq) }),
    quant_seconds: seconds,
    calib_dtype: options.calibration.dtype,
    // per block: load_s, forward_s, hessian_s, transform_s, quantize_s, pack_s, write_s (src/quant/quantize-checkpoint.ts BlockReport)
    blocks: result.blocks,
    peak_rss_mib: peakRssMiB,
    ppl,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const lines = [
    `wrote ${args.out} (${qc.method}, ${qc.bits}-bit, ${qc.group_size === 0 ? 'per row' : `groups of ${qc.group_size}`}, tuning ${qc.tuning})`,
    ...(quantMethod(qc.method).weakColumns
      ? [`weak columns per linear: ${[...nOut].map(([n, k]) => `${n} ${k}`).join(', ')}`]
      : []),
    ...gradientLines(qc.gradients),
    ...Object.entries(qc.embeddings ?? {}).map(([n, b]) => `${n}: packed per row at ${b} bits`),
    ...(qc.awq === undefined ? [] : awqLines(qc.awq)),
    `average bits: ${qc.avg_bits.decoder_linear.toFixed(3)} (decoder linears), ${qc.avg_bits.file.toFixed(3)} (whole file)`,
    `time ${seconds.toFixed(1)} s, peak memory ${peakRssMiB.toFixed(0)} MiB`,
    ...Object.entries(ppl).map(
      ([d, p]) => `${dataSetName(d)} perplexity of the quantized model (${d}): ${p.toFixed(3)}`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** What the gradient pass located: OWQ's Fisher sensitivity, or GWQ-style's outliers and their bits. */
function gradientLines(g: QuantConfig['gradients']): string[] {
  if (g === undefined) return [];
  const windows = `${g.windows} gradient window${g.windows === 1 ? '' : 's'}`;
  if (g.gwq === undefined) return [`weak columns located by the diagonal Fisher of ${windows}`];
  const q = g.gwq;
  return [
    `GWQ-style outliers: ${q.outliers} in fp16 (ratio ${q.outlier_ratio}, ${q.score} score over ${windows}, ${q.quantizer} for the rest)`,
    `outlier bits: ${q.papers_bits.toFixed(3)} (papers' b + 16 rho), ${q.stored_bits.toFixed(3)} stored per decoder-linear weight (codes, scales, zeros, outlier indices and values)`,
  ];
}

/** The chosen AWQ ratio of every scaling group, per block: {"model.layers.0": {"input_layernorm": 0.05, ...}}. */
function awqAlphas(awq: NonNullable<QuantConfig['awq']>): Record<string, Record<string, number>> {
  return Object.fromEntries(
    (awq.blocks as AwqBlockRecord[]).map((b) => [
      `block ${b.block}`,
      Object.fromEntries(b.scales.map((s) => [s.prev, s.alpha])),
    ]),
  );
}

/** What the AWQ searches did, a line per block: the chosen ratio of each group and the linears clipped. */
function awqLines(awq: NonNullable<QuantConfig['awq']>): string[] {
  return (awq.blocks as AwqBlockRecord[]).map((b) => {
    const scales = b.scales.map(
      (s) => `${s.prev.split('.').at(-1)} -> ${s.linears.map((l) => l.split('.').at(-1)).join(',')} ${s.alpha}`,
    );
    const parts = [
      ...(awq.scale ? [`alpha ${scales.join('; ')}`] : []),
      ...(awq.clip ? [`${b.clipped.length} linears clipped`] : []),
    ];
    return `AWQ block ${b.block}: ${parts.join(', ')}`;
  });
}
