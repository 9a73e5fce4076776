/**
 * Quantization benchmarks (issue 3), one run:
 *  - wall time of quantizing TinyStories-656K (reference calibration windows) and an opt-125m-shaped
 *    random model (C4 calibration, fewer/shorter windows, stated in the rows);
 *  - decode tokens/s of the opt-125m-shaped model: fp32 vs packed 4-bit vs packed 3-bit (RTN) vs packed
 *    3-bit with the token embedding (= tied lm_head) packed at 8 bits, each loaded from its packed
 *    checkpoint; greedy with the KV cache, through the fused packed GEMV.
 */
import { NO_GRADIENTS } from '../src/quant/methods.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluateData } from '../src/eval/evaluate-data.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { readConfig } from '../src/models/families/registry.js';
import { generate } from '../src/models/generate.js';
import { initRandom } from '../src/models/init-random.js';
import { loadModel } from '../src/models/load.js';
import type { CausalLM } from '../src/models/model.js';
import { AWQ_GRID, NO_AWQ } from '../src/quant/awq.js';
import { readCalibrationTokens, sampleCalibration } from '../src/quant/calibration.js';
import { quantizeCheckpoint } from '../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../src/recipe/quantize-options.js';
import { quantizeModel, type ModelQuantizeOptions } from '../src/quant/pipeline.js';
import { weakCounts, type WeakBudget } from '../src/quant/weak-count.js';
import { sharedDataDir } from '../src/io/text-data.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { hostMachine, writeReport, type Row } from './report.js';

interface Job {
  label: string;
  method: ModelQuantizeOptions['method'];
  bits: number;
  budget: WeakBudget;
}

async function quantize(model: CausalLM, job: Job, windows: Int32Array[]): Promise<number> {
  const t0 = performance.now();
  await quantizeModel(model, {
    method: job.method,
    bits: job.bits,
    groupSize: 0,
    tuning: job.method === 'owq' ? 'mse' : 'minmax',
    actOrder: false,
    trueSequential: false,
    awq: NO_AWQ,
    percdamp: 0.01,
    ...NO_GRADIENTS,
    nOut: weakCounts(model.config, job.bits, job.budget),
    windows,
  });
  return (performance.now() - t0) / 1000;
}

const JOBS: Job[] = [
  { label: 'RTN 4-bit', method: 'rtn', bits: 4, budget: null },
  { label: 'GPTQ 4-bit', method: 'gptq', bits: 4, budget: null },
  { label: 'OWQ 3-bit, target_bit 3.1', method: 'owq', bits: 3, budget: { targetBit: 3.1 } },
];

async function quantTimeRows(opt125m: string): Promise<Row[]> {
  const rows: Row[] = [];
  const tiny = path.join(sharedDataDir(), 'models/tinystories-656k');
  const golden = path.join(sharedDataDir(), 'golden/calib-c4-tinystories-656k-n128-L512.json');
  const tinyWindows = readCalibrationTokens(golden, { nsamples: 128, seqlen: 512 }, readConfig(tiny).vocabSize).windows;
  for (const job of JOBS) {
    rows.push({
      model: 'tinystories-656k',
      calibration: '128 x 512 (reference windows)',
      method: job.label,
      seconds: await quantize(loadModel(tiny), job, tinyWindows),
    });
  }
  const calib = { nsamples: 32, seqlen: 512, seed: 0 };
  const optWindows = sampleCalibration('c4', loadTokenizer(opt125m), calib).windows;
  for (const job of JOBS) {
    process.stderr.write(`bench: quantize opt-125m-shaped, ${job.label}\n`);
    rows.push({
      model: 'opt-125m-shaped (random)',
      calibration: `${calib.nsamples} x ${calib.seqlen} (C4)`,
      method: job.label,
      seconds: await quantize(loadModel(opt125m), job, optWindows),
    });
  }
  return rows;
}

/** The llm-awq runs of ../shared/data/golden/awq-tinystories-656k.json the bench repeats. */
const AWQ_RUNS = [
  { run: 'awq_w3_g64', bits: 3, groupSize: 64, clip: true },
  { run: 'awq_scale_only_w3_g64', bits: 3, groupSize: 64, clip: false },
  { run: 'awq_w4_g128', bits: 4, groupSize: 128, clip: true },
];

/**
 * AWQ on TinyStories-656K with the reference's calibration blocks, beside llm-awq's times on this machine (fp32
 * PyTorch on one thread, measured while the machine was shared: its wall times are inflated, its CPU time is the
 * fairer figure). Ours: wall and process CPU seconds of the whole pipeline, with the TinyStories perplexity.
 */
async function awqRows(): Promise<Row[]> {
  const golden = path.join(sharedDataDir(), 'golden');
  const tiny = path.join(sharedDataDir(), 'models/tinystories-656k');
  const runs: { run: string; quant_wall_seconds: number; search_cpu_seconds: number; ppl_tinystories: number }[] =
    JSON.parse(fs.readFileSync(path.join(golden, 'awq-tinystories-656k.json'), 'utf8')).runs;
  const blocks = readCalibrationTokens(
    path.join(golden, 'calib-awq-c4-tinystories-656k-n128-L512.json'),
    { nsamples: null, seqlen: 512 },
    readConfig(tiny).vocabSize,
  ).windows;
  const text = path.join(sharedDataDir(), 'text/tinystories/tinystories-valid-sample.txt');
  const rows: Row[] = [];
  for (const job of AWQ_RUNS) {
    process.stderr.write(`bench: AWQ ${job.run}\n`);
    const ref = runs.find((r) => r.run === job.run)!;
    const model = loadModel(tiny);
    const [t0, cpu0] = [performance.now(), process.cpuUsage()];
    await quantizeModel(model, {
      method: 'awq',
      bits: job.bits,
      groupSize: job.groupSize,
      tuning: 'minmax',
      actOrder: false,
      trueSequential: false,
      awq: { scale: true, clip: job.clip, grid: AWQ_GRID },
      percdamp: 0.01,
      ...NO_GRADIENTS,
      nOut: new Map(),
      windows: blocks,
    });
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const ppl = (await evaluateData(model, loadTokenizer(tiny), text)).ppl;
    rows.push({
      run: job.run,
      'ours wall s': wall,
      'ours CPU s': cpuSeconds,
      'llm-awq wall s': ref.quant_wall_seconds,
      'llm-awq CPU s': ref.search_cpu_seconds,
      'CPU s ours / llm-awq': cpuSeconds / ref.search_cpu_seconds,
      'ppl ours': ppl,
      'ppl llm-awq': ref.ppl_tinystories,
    });
  }
  return rows;
}

/** An RTN packed checkpoint of `dir` in `out` (the linears at `bits`, optionally the embedding too), loaded as `wct` loads it. */
async function packedModel(dir: string, out: string, bits: number, embedBits?: number): Promise<CausalLM> {
  await quantizeCheckpoint(dir, out, quantizeOptions({ method: 'rtn', wbits: bits, embed_bits: embedBits }), {
    force: true,
  });
  return loadModel(out);
}

async function decodeTokensPerSecond(model: CausalLM, tokens: number): Promise<number> {
  const prompt = Int32Array.of(2, 100, 200, 300);
  for await (const _ of generate(model, prompt, { maxNewTokens: 4 })); // warm-up
  const t0 = performance.now();
  let n = 0;
  for await (const _ of generate(model, prompt, { maxNewTokens: tokens })) n++;
  return n / ((performance.now() - t0) / 1000);
}

async function decodeRows(opt125m: string): Promise<Row[]> {
  const tokens = 48;
  const fp32 = await decodeTokensPerSecond(loadModel(opt125m), tokens);
  const rows: Row[] = [{ model: 'opt-125m-shaped', weights: 'fp32', 'tokens/s': fp32, 'vs fp32': 1 }];
  for (const [bits, embedBits] of [
    [4, undefined],
    [3, undefined],
    [3, 8],
  ] as const) {
    const tps = await decodeTokensPerSecond(await packedModel(opt125m, `${opt125m}-packed`, bits, embedBits), tokens);
    const weights = `packed ${bits}-bit (RTN)${embedBits === undefined ? '' : `, embedding + tied lm_head ${embedBits}-bit`}`;
    rows.push({ model: 'opt-125m-shaped', weights, 'tokens/s': tps, 'vs fp32': tps / fp32 });
  }
  fs.rmSync(`${opt125m}-packed`, { recursive: true, force: true });
  return rows;
}

/** Runs the quantization benchmarks and writes bench/results/quant.{json,md}; returns the markdown path. */
export async function runQuantBench(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bench-quant-'));
  try {
    initRandom({ like: 'opt-125m', out: dir, seed: 0 });
    process.stderr.write('bench: decode tokens/s\n');
    const decode = await decodeRows(dir);
    process.stderr.write('bench: quantization time\n');
    const times = await quantTimeRows(dir);
    const awq = await awqRows();
    return writeReport({
      name: 'quant',
      machine: hostMachine(),
      sections: [
        { title: 'Decode (greedy, KV cache, batch 1): fp32 vs packed', rows: decode },
        { title: 'Quantization wall time (block pipeline, this machine)', rows: times },
        { title: 'AWQ on TinyStories-656K beside llm-awq (fp32 PyTorch, 1 thread) on this machine', rows: awq },
      ],
    }).md;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'node dist/bench/quant.js',
    describe:
      'Quantization wall times (TinyStories-656K, opt-125m-shaped), AWQ beside llm-awq, and decode tokens/s fp32 vs packed. Writes bench/results/quant.{json,md} and prints the markdown (part of `npm run bench`).',
  });
  process.stdout.write(fs.readFileSync(await runQuantBench(), 'utf8'));
}
