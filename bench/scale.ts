/**
 * `npm run bench:scale` (issue 16): a 7B-shaped model end to end on this machine, each phase a fresh `wct` process.
 *  1. `wct init-random --like llama-7b` (F16, two shards as Llama-2-7b-hf; reused when the directory holds it), with
 *     TinyStories-656K's tokenizer copied in (no Llama tokenizer ships here: ids < 2048, the costs per token are the
 *     model's);
 *  2. `wct quantize --method owq --wbits 3 --target-bit 3.1 --nsamples N --seqlen L --json` (default 16 x 512);
 *  3. `wct eval --data wikitext2 --max-chunks 4 --json`: the first 4 chunks of WikiText-2;
 *  4. 5 WCT steps (`wct-train --json` on a recipe the bench writes: Alpaca, one example per step, gradient checkpointing);
 *  and in this process: the Hessian update H += X^T X through ssyrk against the sgemm it replaced (K 4096,
 *  T 8192), and the native GPTQ's time split (params, Hinv, sweeps, updates) on one linear of each shape.
 * Each phase's wall time and peak RSS (the commands' peak_rss_mib), quantize's per-block split (`blocks` of its
 * --json), the memory budgets of the issue, and a projection of the full protocol (128 x 2048 calibration tokens,
 * the whole of WikiText-2, the preset's layer count) from the measured per-token and per-linear costs go to
 * bench/results/scale.{json,md}. `--like llama-7b --layers 2` runs it in minutes.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'yaml';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { loadEvalText, sharedDataDir } from '../src/io/text-data.js';
import { familyOf, readConfig } from '../src/models/families/registry.js';
import { PRESETS, type Preset } from '../src/models/init-random.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadNative } from '../src/native/addon.js';
import { gemmDims } from '../src/native/types.js';
import { gptq } from '../src/quant/gptq.js';
import { Hessian } from '../src/quant/hessian.js';
import { packageRoot } from '../src/util/package-root.js';
import { Rng } from '../src/util/rng.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { writeReport, type Row } from './report.js';

const ROOT = packageRoot();
const WCT = path.join(ROOT, 'dist/src/cli/wct.js');
const WCT_TRAIN = path.join(ROOT, 'dist/src/cli/wct-train.js');
/** The reference protocol: 128 calibration windows of 2048 tokens. */
const FULL = { nsamples: 128, seqlen: 2048 };
const EVAL_CHUNKS = 4;

interface Args {
  like: Preset;
  layers?: number;
  dir: string;
  nsamples: number;
  seqlen: number;
  evalSeqlen?: number;
  steps: number;
  trainLength: number;
}

/** One phase: what ran, its wall time (process start to exit) and the peak RSS it reported. */
interface Phase {
  phase: string;
  wall_s: number;
  peak_rss_mib: number | null;
  json: Record<string, unknown> | null;
}

/** Runs node `script` with `args`, stderr shown; returns the wall time and the JSON its stdout ends with. */
function runNode(phase: string, script: string, args: string[]): Phase {
  process.stderr.write(`bench scale: ${phase}: ${path.basename(script)} ${args.join(' ')}\n`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`bench scale: ${phase} failed (exit ${r.status}):\n${r.stdout}`);
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  const json = last.startsWith('{') ? (JSON.parse(last) as Record<string, unknown>) : null;
  const rss = json?.peak_rss_mib ?? json?.peakRssMiB;
  return { phase, wall_s: wall, peak_rss_mib: typeof rss === 'number' ? rss : null, json };
}

/** The checkpoint `dir` holds (reused), or a fresh init-random into it, measured with /usr/bin/time when present. */
function initModel(a: Args, dir: string): Phase {
  if (fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, 'tokenizer.json')))
    return { phase: 'init-random (reused)', wall_s: 0, peak_rss_mib: null, json: null };
  const args = ['init-random', '--like', a.like, '--out', dir, '--force'];
  if (a.layers !== undefined) args.push('--layers', String(a.layers));
  const timeFile = `${dir}.rss`;
  const time = fs.existsSync('/usr/bin/time');
  process.stderr.write(`bench scale: init-random: ${args.join(' ')}\n`);
  const t0 = performance.now();
  const cmd = time ? ['/usr/bin/time', '-f', '%M', '-o', timeFile, process.execPath] : [process.execPath];
  const r = spawnSync(cmd[0], [...cmd.slice(1), WCT, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`bench scale: init-random failed (exit ${r.status})`);
  const wall = (performance.now() - t0) / 1000;
  const tiny = path.join(sharedDataDir(), 'models/tinystories-656k');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tiny, f), path.join(dir, f));
  const rss = time ? Number(fs.readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) / 1024 : null;
  fs.rmSync(timeFile, { force: true });
  return { phase: 'init-random', wall_s: wall, peak_rss_mib: rss, json: null };
}

/** The tokens of the whole of WikiText-2 as eval tokenizes it (for the projection). */
function wikitextTokens(modelDir: string): number {
  return loadTokenizer(modelDir).encode(loadEvalText('wikitext2').text).length;
}

function writeRecipe(a: Args, dir: string, packed: string): string {
  const recipe = {
    extends: path.join(ROOT, 'configs/train/wct-defaults.yaml'),
    model: { path: packed },
    data: {
      path: path.join(sharedDataDir(), 'instruct/alpaca/alpaca-2k.json'),
      format: 'alpaca',
      template: 'alpaca',
      max_length: a.trainLength,
      validation: { count: 2 },
    },
    train: { steps: a.steps, micro_batch: 1, grad_accum: 1, gradient_checkpointing: true },
    eval: { every: a.steps, final: [] },
    output: { dir: path.join(dir, 'wct-run'), save_every: a.steps, keep: 1 },
  };
  const file = path.join(dir, 'wct.yaml');
  fs.writeFileSync(file, yaml.stringify(recipe));
  fs.rmSync(path.join(dir, 'wct-run'), { recursive: true, force: true });
  return file;
}

function seconds(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

function gaussian(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.next() - 0.5);
}

/** H += X^T X for K 4096, T 8192 tokens: the sgemm of before against ssyrk, and the mirror when H is read. */
async function hessianRows(): Promise<Row[]> {
  const k = 4096;
  const t = 8192;
  const x = gaussian(t * k, 1);
  const h = new Float32Array(k * k);
  const native = loadNative();
  const sgemm = () => native.gemm(x, x, h, gemmDims(k, k, t, { transA: true, beta: 1 }));
  const syrk = () => native.syrk(x, h, { n: k, k: t, alpha: 1, beta: 1 });
  const best = (f: () => void) => Math.min(seconds(f), seconds(f));
  const gemmS = best(sgemm);
  const syrkS = best(syrk);
  const hessian = new Hessian(k);
  hessian.add(x, t);
  const t0 = performance.now();
  await hessian.values();
  const mirrorS = (performance.now() - t0) / 1000;
  const macs = k * k * t;
  return [
    { path: 'sgemm (before)', seconds: gemmS, 'GFLOP/s (2 K² T)': (2 * macs) / gemmS / 1e9, 'vs sgemm': 1 },
    { path: 'ssyrk (upper)', seconds: syrkS, 'GFLOP/s (2 K² T)': (2 * macs) / syrkS / 1e9, 'vs sgemm': syrkS / gemmS },
    { path: 'mirror on read', seconds: mirrorS, 'GFLOP/s (2 K² T)': '', 'vs sgemm': mirrorS / gemmS },
  ];
}

/** The native GPTQ's time split on one random linear of each of the model's shapes (OWQ's mse tuning). */
function gptqRows(modelDir: string): Row[] {
  const config = readConfig(modelDir);
  const shapes = new Map<string, { rows: number; cols: number; names: string[] }>();
  for (const l of familyOf(config).blockLinears(config)) {
    const key = `${l.out}x${l.in}`;
    const s = shapes.get(key) ?? { rows: l.out, cols: l.in, names: [] };
    s.names.push(l.name);
    shapes.set(key, s);
  }
  const native = loadNative();
  return [...shapes.values()].map(({ rows, cols, names }) => {
    process.stderr.write(`bench scale: gptq split, ${rows} x ${cols}\n`);
    const w = gaussian(rows * cols, rows + cols);
    const tokens = 256;
    const x = gaussian(tokens * cols, cols);
    const h = new Float32Array(cols * cols);
    native.syrk(x, h, { n: cols, k: tokens, alpha: 1, beta: 0 });
    for (let i = 0; i < cols; i++) {
      for (let j = 0; j < i; j++) h[i * cols + j] = h[j * cols + i];
      h[i * cols + i] += tokens / 12; // + the mean diagonal: well conditioned, as a damped real H
    }
    const t0 = performance.now();
    const { timing } = gptq(w, h, rows, cols, { bits: 3, nQuant: cols, tuning: 'mse' });
    const total = (performance.now() - t0) / 1000;
    return {
      linears: names.join(', '),
      'rows x cols': `${rows} x ${cols}`,
      total_s: total,
      params_s: timing.paramsS,
      hinv_s: timing.hinvS,
      sweep_s: timing.sweepS,
      update_s: timing.updateS,
    };
  });
}

/**
 * One block's native GPTQ (each shape's times the count of its linears) beside quantize's measured quantize_s per
 * block: the difference is the method's work outside the sweep (OWQ's sensitivities and permutations).
 */
function blockGptqRows(split: Row[], quantize: Phase): Row[] {
  const keys = ['total_s', 'params_s', 'hinv_s', 'sweep_s', 'update_s'];
  const block: Row = { linears: 'one block (its linears, from the rows above)', 'rows x cols': '' };
  for (const k of keys)
    block[k] = split.reduce((n, r) => n + (r[k] as number) * String(r.linears).split(', ').length, 0);
  const blocks = blocksOf(quantize);
  const measured = blocks === null ? 'not reported' : meanBlock(blocks).quantize_s;
  return [block, { linears: 'quantize_s per block in wct quantize (mean)', 'rows x cols': '', total_s: measured }];
}

/** quantize --json's per-block split (E's BlockReport), or null when this build does not report it. */
type BlockSplit = Record<string, number>;

function blocksOf(q: Phase): BlockSplit[] | null {
  const blocks = q.json?.blocks;
  return Array.isArray(blocks) && blocks.length > 0 ? (blocks as BlockSplit[]) : null;
}

/** The mean of each field over the blocks. */
function meanBlock(blocks: BlockSplit[]): BlockSplit {
  const mean: BlockSplit = {};
  for (const key of Object.keys(blocks[0]).filter((k) => k.endsWith('_s')))
    mean[key] = blocks.reduce((n, b) => n + (b[key] ?? 0), 0) / blocks.length;
  return mean;
}

/** Weights a token passes through (decoder linears of every block and the lm_head): the cost scale of a forward. */
function weightsPerToken(modelDir: string, layers: number): number {
  const config = readConfig(modelDir);
  const block = familyOf(config)
    .blockLinears(config)
    .reduce((n, l) => n + l.out * l.in, 0);
  return layers * block + config.vocabSize * config.hiddenSize;
}

interface Measured {
  a: Args;
  modelDir: string;
  layers: number;
  fullLayers: number;
  calibTokens: number;
  evalTokens: number;
  wikiTokens: number;
  phases: Phase[];
}

/**
 * The full protocol from the measured costs: forwards and Hessians scale with the calibration tokens, the GPTQ
 * sweeps, packing and writes with the linears (per block), blocks with the preset's layer count; eval and a WCT
 * step scale with the weights a token passes through (and eval with the tokens of the whole of WikiText-2).
 * Attention's cost per token grows with the sequence (under 1% of a 7B block's multiply-adds at 2048): ignored.
 */
function projectionRows(m: Measured, quantize: Phase, evalPhase: Phase, train: Phase): Row[] {
  const fullTokens = FULL.nsamples * FULL.seqlen;
  const rows: Row[] = [];
  const blocks = blocksOf(quantize);
  if (blocks === null) {
    rows.push({ phase: 'quantize', measured_s: quantize.wall_s, projected_s: 'not reported (no per-block split)' });
  } else {
    const b = meanBlock(blocks);
    const perToken = (b.forward_s ?? 0) + (b.hessian_s ?? 0);
    const perLinear = Object.entries(b)
      .filter(([k]) => k !== 'forward_s' && k !== 'hessian_s')
      .reduce((n, [, v]) => n + v, 0);
    const blockSum = blocks.reduce(
      (n, x) => n + Object.entries(x).reduce((s, [k, v]) => s + (k.endsWith('_s') ? v : 0), 0),
      0,
    );
    const rest = Math.max(0, quantize.wall_s - blockSum);
    const perBlock = perToken * (fullTokens / m.calibTokens) + perLinear;
    rows.push({
      phase: 'quantize',
      measured_s: quantize.wall_s,
      'per block (measured)': `${perToken.toFixed(2)} s tokens-bound + ${perLinear.toFixed(2)} s linear-bound`,
      'per block (projected)': perBlock,
      projected_s: perBlock * m.fullLayers + rest,
    });
  }
  const evalScale =
    (m.wikiTokens / m.evalTokens) * (weightsPerToken(m.modelDir, m.fullLayers) / weightsPerToken(m.modelDir, m.layers));
  rows.push({
    phase: 'eval (all of WikiText-2)',
    measured_s: evalPhase.wall_s,
    projected_s: evalPhase.wall_s * evalScale,
  });
  const stepS = ((train.json?.train as { stepSeconds?: number } | undefined)?.stepSeconds ?? Number.NaN) as number;
  const trainScale = weightsPerToken(m.modelDir, m.fullLayers) / weightsPerToken(m.modelDir, m.layers);
  rows.push({ phase: 'one WCT step', measured_s: stepS, projected_s: stepS * trainScale });
  return rows;
}

function dirBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

/** The issue's memory budgets for this run's sizes, against the measured peaks. */
function budgetRows(m: Measured, quantize: Phase, evalPhase: Phase, train: Phase, packed: string): Row[] {
  const config = readConfig(m.modelDir);
  const blockWeights = familyOf(config)
    .blockLinears(config)
    .reduce((n, l) => n + l.out * l.in, 0);
  const blockMiB = (blockWeights * 4) / 2 ** 20;
  const actsMiB = (m.a.nsamples * m.a.seqlen * config.hiddenSize * 4) / 2 ** 20;
  const quantBudget = 4 * 1024 + blockMiB + actsMiB;
  const packedMiB = dirBytes(packed) / 2 ** 20;
  const verdict = (peak: number | null, budget: number) =>
    peak === null ? 'not reported' : peak <= budget ? 'within' : 'OVER';
  return [
    {
      phase: 'quantize',
      'peak RSS MiB': quantize.peak_rss_mib ?? 'not reported',
      'budget MiB': quantBudget,
      arithmetic: `4 GiB + one fp32 block (${blockMiB.toFixed(0)} MiB) + one block's activations (${m.a.nsamples} x ${m.a.seqlen} x ${config.hiddenSize} x 4 B = ${actsMiB.toFixed(0)} MiB)`,
      verdict: verdict(quantize.peak_rss_mib, quantBudget),
    },
    ...[evalPhase, train].map((p) => ({
      phase: p.phase,
      'peak RSS MiB': p.peak_rss_mib ?? 'not reported',
      'budget MiB': packedMiB + 3 * 1024,
      arithmetic: `packed file (${packedMiB.toFixed(0)} MiB) + 3 GiB`,
      verdict: verdict(p.peak_rss_mib, packedMiB + 3 * 1024),
    })),
  ];
}

function blockRows(quantize: Phase): Row[] {
  const blocks = blocksOf(quantize);
  if (blocks === null) return [{ block: 'not reported (quantize --json has no blocks)' }];
  return blocks.map((b) => {
    const row: Row = {};
    for (const [k, v] of Object.entries(b)) row[k] = v;
    return row;
  });
}

export async function runScaleBench(a: Args): Promise<string> {
  fs.mkdirSync(a.dir, { recursive: true });
  const modelDir = path.join(a.dir, 'model');
  const packed = path.join(a.dir, 'packed');
  process.stderr.write('bench scale: Hessian ssyrk vs sgemm (K 4096, T 8192)\n');
  const hessian = await hessianRows();
  const init = initModel(a, modelDir);
  const config = readConfig(modelDir);
  const quantize = runNode('quantize', WCT, [
    'quantize',
    '--model',
    modelDir,
    '--out',
    packed,
    '--force',
    '--method',
    'owq',
    '--wbits',
    '3',
    '--target-bit',
    '3.1',
    '--nsamples',
    String(a.nsamples),
    '--seqlen',
    String(a.seqlen),
    '--json',
  ]);
  const evalSeqlen = a.evalSeqlen ?? config.maxPositions;
  const wikiTokens = wikitextTokens(packed);
  const evalPhase = runNode('eval', WCT, [
    'eval',
    '--model',
    packed,
    '--data',
    'wikitext2',
    '--max-chunks',
    String(EVAL_CHUNKS),
    '--seqlen',
    String(evalSeqlen),
    '--json',
  ]);
  const train = runNode(`wct ${a.steps} steps`, WCT_TRAIN, [writeRecipe(a, a.dir, packed), '--json']);
  const gptqSplit = gptqRows(modelDir);
  gptqSplit.push(...blockGptqRows(gptqSplit, quantize));
  const preset = JSON.parse(fs.readFileSync(path.join(ROOT, 'configs/models', `${a.like}.json`), 'utf8'));
  const fullLayers = (preset as { num_hidden_layers: number }).num_hidden_layers;
  const m: Measured = {
    a,
    modelDir,
    layers: config.numLayers,
    fullLayers,
    calibTokens: a.nsamples * a.seqlen,
    evalTokens: EVAL_CHUNKS * evalSeqlen,
    wikiTokens: Math.floor(wikiTokens / evalSeqlen) * evalSeqlen,
    phases: [init, quantize, evalPhase, train],
  };
  const phases: Row[] = m.phases.map((p) => ({
    phase: p.phase,
    wall_s: p.wall_s,
    'peak RSS MiB': p.peak_rss_mib ?? 'not reported',
  }));
  return writeReport({
    name: 'scale',
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      'logical CPUs': os.cpus().length,
      'load average at start': os.loadavg()[0].toFixed(2),
      node: process.version,
      model: `${a.like}${a.layers === undefined ? '' : ` with ${a.layers} layers`} (random, F16, ${openCheckpoint(modelDir).path.endsWith('.json') ? 'sharded' : 'one file'}), TinyStories-656K's tokenizer`,
      calibration: `${a.nsamples} x ${a.seqlen} tokens of C4 (full protocol ${FULL.nsamples} x ${FULL.seqlen})`,
      eval: `first ${EVAL_CHUNKS} chunks of ${evalSeqlen} tokens of WikiText-2 (whole text: ${m.wikiTokens / evalSeqlen} chunks)`,
      train: `${a.steps} WCT steps, 1 Alpaca example of at most ${a.trainLength} tokens each, gradient checkpointing`,
    },
    sections: [
      { title: 'Phases (wall time of each wct process, peak RSS it reported)', rows: phases },
      { title: 'Quantize, per block (quantize --json blocks)', rows: blockRows(quantize) },
      { title: 'Memory budgets (issue 16)', rows: budgetRows(m, quantize, evalPhase, train, packed) },
      {
        title: `Projection: ${FULL.nsamples} x ${FULL.seqlen} calibration, ${fullLayers} layers, this CPU`,
        rows: projectionRows(m, quantize, evalPhase, train),
      },
      { title: 'Hessian H += X^T X, K 4096, T 8192 (best of 2)', rows: hessian },
      { title: 'Native GPTQ time split, one linear of each shape (3 bits, mse)', rows: gptqSplit },
    ],
  }).md;
}

if (isEntryPoint(import.meta.url)) {
  const argv = parseBenchArgs({
    usage:
      'npm run bench:scale [-- --like PRESET --layers N --dir DIR --nsamples N --seqlen L --eval-seqlen L --steps N --train-length N]',
    describe:
      'A 7B-shaped model end to end, each phase a fresh `wct` process: init-random (reused from --dir), OWQ 3.1-bit quantize, eval on 4 chunks of WikiText-2, WCT steps; and in this process the Hessian update and the native GPTQ split. Writes bench/results/scale.{json,md} and prints the markdown.',
    options: (y) =>
      y
        .option('like', {
          choices: PRESETS,
          default: 'llama-7b' as Preset,
          describe: 'Model shapes (wct init-random --like)',
        })
        .option('layers', {
          type: 'number',
          describe: 'Decoder layers (default: the preset’s); e.g. 2 for a run in minutes',
        })
        .option('dir', {
          type: 'string',
          default: path.join(os.tmpdir(), 'wct-bench-scale'),
          requiresArg: true,
          describe: 'Work directory (the model in it is reused)',
        })
        .option('nsamples', { type: 'number', default: 16, describe: 'Calibration windows' })
        .option('seqlen', { type: 'number', default: 512, describe: 'Calibration window length' })
        .option('eval-seqlen', { type: 'number', describe: 'Eval chunk length (default: max_position_embeddings)' })
        .option('steps', { type: 'number', default: 5, describe: 'WCT steps' })
        .option('train-length', { type: 'number', default: 256, describe: 'WCT: max tokens per example' }),
  });
  runScaleBench(argv as unknown as Args).then(
    (md) => process.stdout.write(`${fs.readFileSync(md, 'utf8')}`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
