/**
 * `wct quantize`: RTN, GPTQ or OWQ over a full-precision checkpoint, written as a packed checkpoint
 * (src/io/packed-checkpoint.ts), optionally evaluated right after from the written files.
 */
import fs from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { evaluateData } from '../../eval/evaluate-data.js';
import { isPackedCheckpoint, type QuantConfig } from '../../io/packed-checkpoint.js';
import { quantizeCheckpoint } from '../../quant/quantize-checkpoint.js';
import { firstProblem } from '../../recipe/load.js';
import { quantizeSchema, type QuantizeRecipe } from '../../recipe/schema.js';
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
  embedBits?: number;
  out: string;
  force: boolean;
  eval?: string;
  json: boolean;
}

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
      .option('group-size', { type: 'number', default: 0, describe: 'Input columns per quantization group; the last group of a row is shorter when this does not divide in_features (0: per row)' })
      .option('act-order', { type: 'boolean', default: false, describe: 'GPTQ/OWQ: quantize columns by decreasing diag(H) / sensitivity' })
      .option('true-sequential', { type: 'boolean', default: false, describe: 'Quantize q/k/v, o, up/gate, down one group after another' })
      .option('tuning', { type: 'string', describe: 'Quantizer parameters: minmax | mse (default: mse for owq, minmax otherwise)' })
      .option('calib', { type: 'string', default: 'c4', describe: 'Calibration text: c4 | wikitext2 | path to .jsonl/.txt' })
      .option('calib-tokens', { type: 'string', describe: 'JSON file {"windows": [[ids...]]}: exact calibration windows (overrides --calib)' })
      .option('nsamples', { type: 'number', default: 128, describe: 'Calibration windows' })
      .option('seqlen', { type: 'number', describe: 'Calibration window length (default: max_position_embeddings)' })
      .option('seed', { type: 'number', default: 0, describe: 'Calibration sampling seed' })
      .option('percdamp', { type: 'number', default: 0.01, describe: 'GPTQ damping, a fraction of mean(diag H)' })
      .option('embed-bits', { type: 'number', describe: 'Also pack the token embedding (and an untied lm_head) per row at 8 or 4 bits (default: keep their dtype)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory for the packed checkpoint' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing output directory' })
      .option('eval', { type: 'string', describe: 'Evaluate the written model on these (comma-separated: wikitext2,c4,PATH)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the summary as JSON on stdout' }) as unknown as Argv<QuantizeArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<QuantizeArgs>) => {
    const q = settings(args);
    if (fs.existsSync(args.out) && !args.force) throw new UsageError(`--out: ${args.out} exists (pass --force to replace it)`);
    if (isPackedCheckpoint(args.model)) throw new UsageError(`--model: ${args.model} is already a packed checkpoint`);
    const bar = progressBar('quantize');
    const { config: qc, nOut, seconds } = quantizeCheckpoint(args.model, args.out, q, args.force, (d, t) => bar.update(d, t));
    bar.stop();
    const ppl: Record<string, number> = {};
    if (args.eval !== undefined) {
      const packedModel = loadModelDir(args.out);
      for (const data of args.eval.split(',').filter((d) => d !== '')) {
        const evalBar = progressBar(`eval ${data}`);
        ppl[data] = evaluateData(packedModel.model, packedModel.tokenizer, data, { onProgress: (d, t) => evalBar.update(d, t) }).ppl;
        evalBar.stop();
      }
    }
    report(args, qc, nOut, seconds, ppl);
  }),
};

/** The flags as a recipe's model.quantize section, checked by the recipe schema (one validator for both):
 * a one-line error naming the first bad flag. */
function settings(args: QuantizeArgs): QuantizeRecipe {
  const section = {
    method: args.method, wbits: args.wbits, target_bit: args.targetBit, target_rank: args.targetRank, group_size: args.groupSize,
    act_order: args.actOrder, true_sequential: args.trueSequential, tuning: args.tuning, calib: args.calib, calib_tokens: args.calibTokens,
    nsamples: args.nsamples, seqlen: args.seqlen, seed: args.seed, percdamp: args.percdamp, embed_bits: args.embedBits,
  };
  const parsed = quantizeSchema.safeParse(section);
  if (parsed.success) return parsed.data;
  const { path, problem } = firstProblem(parsed.error.issues, section);
  throw new UsageError(`--${String(path[0]).replaceAll('_', '-')}: ${problem}`);
}

function report(args: QuantizeArgs, qc: QuantConfig, nOut: Map<string, number>, seconds: number, ppl: Record<string, number>): void {
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const summary = {
    out: args.out, method: qc.method, bits: qc.bits, group_size: qc.group_size, tuning: qc.tuning, n_out: Object.fromEntries(nOut),
    embeddings: qc.embeddings ?? {}, avg_bits: qc.avg_bits, quant_seconds: seconds, peak_rss_mib: peakRssMiB, ppl,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const lines = [
    `wrote ${args.out} (${qc.method}, ${qc.bits}-bit, ${qc.group_size === 0 ? 'per row' : `groups of ${qc.group_size}`}, tuning ${qc.tuning})`,
    `weak columns per linear: ${[...nOut].map(([n, k]) => `${n} ${k}`).join(', ')}`,
    ...Object.entries(qc.embeddings ?? {}).map(([n, b]) => `${n}: packed per row at ${b} bits`),
    `average bits: ${qc.avg_bits.decoder_linear.toFixed(3)} (decoder linears), ${qc.avg_bits.file.toFixed(3)} (whole file)`,
    `time ${seconds.toFixed(1)} s, peak memory ${peakRssMiB.toFixed(0)} MiB`,
    ...Object.entries(ppl).map(([d, p]) => `${d}: ppl ${p.toFixed(3)}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
