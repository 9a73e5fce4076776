/**
 * `wct quantize`: RTN, GPTQ or OWQ over a full-precision checkpoint, written as a packed checkpoint
 * (src/io/packed-checkpoint.ts), optionally evaluated right after from the written files.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { evaluateData } from '../../eval/evaluate-data.js';
import { isPackedCheckpoint, PACKED_FORMAT, PACKED_VERSION, writePackedCheckpoint, type QuantConfig } from '../../io/packed-checkpoint.js';
import type { PackedBits } from '../../native/packed.js';
import { readCalibrationTokens, sampleCalibration, type Calibration } from '../../quant/calibration.js';
import { quantFamily } from '../../quant/family.js';
import { toPacked } from '../../quant/pack.js';
import { quantizeModel, type QuantMethod } from '../../quant/pipeline.js';
import type { QuantizedColumns } from '../../quant/quantized.js';
import type { Tuning } from '../../quant/quantizer.js';
import { weakCounts, type WeakBudget } from '../../quant/weak-count.js';
import { loadModelDir } from '../model-dir.js';
import { UsageError, progressBar, runHandler } from '../run.js';

interface QuantizeArgs {
  model: string;
  method: string;
  wbits: number;
  targetBit?: number;
  targetRank?: number;
  groupSize: number;
  actOrder: boolean;
  trueSequential: boolean;
  tuning?: string;
  calib: string;
  calibTokens?: string;
  nsamples: number;
  seqlen?: number;
  seed: number;
  percdamp: number;
  out: string;
  force: boolean;
  eval?: string;
  json: boolean;
}

const METHODS: readonly QuantMethod[] = ['rtn', 'gptq', 'owq'];
const BITS = [2, 3, 4, 8];

export const quantizeCommand: CommandModule<object, QuantizeArgs> = {
  command: 'quantize',
  describe: 'Quantize a checkpoint with RTN, GPTQ or OWQ and write a packed checkpoint',
  builder: (y: Argv) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Full-precision Hugging Face checkpoint directory' })
      .option('method', { type: 'string', default: 'owq', describe: 'rtn | gptq | owq' })
      .option('wbits', { type: 'number', default: 4, describe: 'Bits per weight: 2, 3, 4 or 8' })
      .option('target-bit', { type: 'number', describe: 'OWQ: average bits including the fp16 weak columns (e.g. 3.1)' })
      .option('target-rank', { type: 'number', describe: 'OWQ: weak columns in every linear (instead of --target-bit)' })
      .option('group-size', { type: 'number', default: 0, describe: 'Input columns per quantization group (0: per row)' })
      .option('act-order', { type: 'boolean', default: false, describe: 'GPTQ/OWQ: quantize columns by decreasing diag(H) / sensitivity' })
      .option('true-sequential', { type: 'boolean', default: false, describe: 'Quantize q/k/v, o, up/gate, down one group after another' })
      .option('tuning', { type: 'string', describe: 'Quantizer parameters: minmax | mse (default: mse for owq, minmax otherwise)' })
      .option('calib', { type: 'string', default: 'c4', describe: 'Calibration text: c4 | wikitext2 | path to .jsonl/.txt' })
      .option('calib-tokens', { type: 'string', describe: 'JSON file {"windows": [[ids...]]}: exact calibration windows (overrides --calib)' })
      .option('nsamples', { type: 'number', default: 128, describe: 'Calibration windows' })
      .option('seqlen', { type: 'number', describe: 'Calibration window length (default: max_position_embeddings)' })
      .option('seed', { type: 'number', default: 0, describe: 'Calibration sampling seed' })
      .option('percdamp', { type: 'number', default: 0.01, describe: 'GPTQ damping, a fraction of mean(diag H)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory for the packed checkpoint' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing output directory' })
      .option('eval', { type: 'string', describe: 'Evaluate the written model on these (comma-separated: wikitext2,c4,PATH)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the summary as JSON on stdout' }) as unknown as Argv<QuantizeArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<QuantizeArgs>) => {
    const method = checkOptions(args);
    if (fs.existsSync(args.out) && !args.force) throw new UsageError(`--out: ${args.out} exists (pass --force to replace it)`);
    if (isPackedCheckpoint(args.model)) throw new UsageError(`--model: ${args.model} is already a packed checkpoint`);
    const { model, tokenizer } = loadModelDir(args.model);
    const config = model.config;
    const budget: WeakBudget = args.targetBit !== undefined ? { targetBit: args.targetBit } : args.targetRank !== undefined ? { targetRank: args.targetRank } : null;
    const nOut = weakCounts(config, args.wbits, budget);
    checkLayers(model.linears(), model.blockPrefix(0), nOut, args);
    const seqlen = args.seqlen ?? config.maxPositions;
    if (!(Number.isInteger(seqlen) && seqlen >= 2 && seqlen <= config.maxPositions)) {
      throw new UsageError(`--seqlen: expected an integer in [2, ${config.maxPositions}]`);
    }
    const calibOptions = { nsamples: args.nsamples, seqlen, seed: args.seed };
    let calibration: Calibration | null = null;
    if (method !== 'rtn') {
      calibration = args.calibTokens !== undefined
        ? readCalibrationTokens(args.calibTokens, calibOptions, config.vocabSize)
        : sampleCalibration(args.calib, tokenizer, calibOptions);
    }
    const tuning = (args.tuning ?? (method === 'owq' ? 'mse' : 'minmax')) as Tuning;
    const steps = model.numBlocks * (quantFamily(config).linears.length + (method === 'rtn' ? 0 : 2));
    const bar = progressBar('quantize');
    let done = 0;
    const started = performance.now();
    const results = quantizeModel(model, {
      method, bits: args.wbits, groupSize: args.groupSize, tuning, actOrder: args.actOrder, trueSequential: args.trueSequential,
      nOut, percdamp: args.percdamp, windows: calibration?.windows ?? [],
      onProgress: () => bar.update(Math.min(++done, steps), steps),
    });
    bar.stop();
    const quantSeconds = (performance.now() - started) / 1000;
    const packed = new Map([...results].map(([name, q]) => [name, toPacked(q)]));
    const qc = writePackedCheckpoint(path.resolve(args.out), {
      sourceDir: path.resolve(args.model),
      weights: model.parameters(),
      packed,
      quantConfig: {
        format: PACKED_FORMAT, version: PACKED_VERSION, method, bits: args.wbits as PackedBits, group_size: args.groupSize,
        target_bit: args.targetBit ?? null, target_rank: args.targetRank ?? null, tuning, act_order: args.actOrder,
        true_sequential: args.trueSequential, percdamp: args.percdamp,
        calibration: calibration === null ? null : { data: calibration.source, ...calibOptions },
        n_out: Object.fromEntries([...results].map(([name, q]) => [name, q.cols - q.nQuant])),
        avg_bits: { decoder_linear: decoderLinearBits(results.values()) },
      },
    }, args.force);
    const ppl: Record<string, number> = {};
    if (args.eval !== undefined) {
      const packedModel = loadModelDir(args.out);
      for (const data of args.eval.split(',').filter((d) => d !== '')) {
        const evalBar = progressBar(`eval ${data}`);
        ppl[data] = evaluateData(packedModel.model, packedModel.tokenizer, data, { onProgress: (d, t) => evalBar.update(d, t) }).ppl;
        evalBar.stop();
      }
    }
    report(args, qc, nOut, quantSeconds, ppl);
  }),
};

/** Option checks that need no model: one-line errors naming the option. */
function checkOptions(args: QuantizeArgs): QuantMethod {
  if (!METHODS.includes(args.method as QuantMethod)) throw new UsageError(`--method: expected rtn, gptq or owq, got ${args.method}`);
  if (!BITS.includes(args.wbits)) throw new UsageError(`--wbits: ${args.wbits} is not supported (expected 2, 3, 4 or 8)`);
  if (args.targetBit !== undefined && args.targetRank !== undefined) throw new UsageError('--target-bit and --target-rank exclude each other');
  if ((args.targetBit !== undefined || args.targetRank !== undefined) && args.method !== 'owq') {
    throw new UsageError('--target-bit / --target-rank apply to --method owq only');
  }
  if (args.targetBit !== undefined && !(args.targetBit >= args.wbits && args.targetBit < 16)) {
    throw new UsageError(`--target-bit: ${args.targetBit} must be at least --wbits ${args.wbits} (and below 16)`);
  }
  if (args.targetRank !== undefined && !(Number.isInteger(args.targetRank) && args.targetRank >= 0)) {
    throw new UsageError('--target-rank: expected a non-negative integer');
  }
  if (!(Number.isInteger(args.groupSize) && args.groupSize >= 0)) throw new UsageError('--group-size: expected a non-negative integer (0: per row)');
  if (args.tuning !== undefined && args.tuning !== 'minmax' && args.tuning !== 'mse') throw new UsageError(`--tuning: expected minmax or mse, got ${args.tuning}`);
  if (!(Number.isInteger(args.nsamples) && args.nsamples >= 1)) throw new UsageError('--nsamples: expected a positive integer');
  if (!(args.percdamp > 0)) throw new UsageError('--percdamp: expected a positive number');
  return args.method as QuantMethod;
}

/** Checks the group size and the weak-column counts against every quantized linear's in_features. */
function checkLayers(linears: ReadonlyMap<string, { inFeatures: number }>, prefix: string, nOut: Map<string, number>, args: QuantizeArgs): void {
  for (const [short, n] of nOut) {
    const cols = linears.get(`${prefix}.${short}`)!.inFeatures;
    if (args.groupSize > 0 && cols % args.groupSize !== 0) {
      throw new UsageError(`--group-size: ${args.groupSize} does not divide ${short}'s in_features ${cols}`);
    }
    if ((cols * args.wbits) % 8 !== 0 || cols % 8 !== 0) throw new UsageError(`${short}: in_features ${cols} is not a multiple of 8`);
    if (n >= cols / 2) {
      const what = args.targetBit !== undefined ? `--target-bit ${args.targetBit}` : `--target-rank ${args.targetRank}`;
      throw new UsageError(`${what} is too high: ${n} weak columns for ${short}, which has ${cols} input columns (at most ${cols / 2 - 1})`);
    }
  }
}

/** The papers' average: low-bit columns plus 16-bit weak columns, over the decoder linears' weights. */
function decoderLinearBits(layers: Iterable<QuantizedColumns>): number {
  let bits = 0;
  let weights = 0;
  for (const q of layers) {
    bits += q.rows * (q.nQuant * q.bits + (q.cols - q.nQuant) * 16);
    weights += q.rows * q.cols;
  }
  return bits / weights;
}

function report(args: QuantizeArgs, qc: QuantConfig, nOut: Map<string, number>, seconds: number, ppl: Record<string, number>): void {
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const summary = {
    out: args.out, method: qc.method, bits: qc.bits, group_size: qc.group_size, tuning: qc.tuning, n_out: Object.fromEntries(nOut),
    avg_bits: qc.avg_bits, quant_seconds: seconds, peak_rss_mib: peakRssMiB, ppl,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const lines = [
    `wrote ${args.out} (${qc.method}, ${qc.bits}-bit, ${qc.group_size === 0 ? 'per row' : `groups of ${qc.group_size}`}, tuning ${qc.tuning})`,
    `weak columns per linear: ${[...nOut].map(([n, k]) => `${n} ${k}`).join(', ')}`,
    `average bits: ${qc.avg_bits.decoder_linear.toFixed(3)} (decoder linears), ${qc.avg_bits.file.toFixed(3)} (whole file)`,
    `time ${seconds.toFixed(1)} s, peak memory ${peakRssMiB.toFixed(0)} MiB`,
    ...Object.entries(ppl).map(([d, p]) => `${d}: ppl ${p.toFixed(3)}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
