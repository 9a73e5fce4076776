/**
 * A model whose every linear has an in_features that is no multiple of 8, end to end through the CLI:
 * `wct init-random` writes a random Llama of hidden 60 (5 heads of 12, 1 key/value head: q/k/v/o/gate/up take
 * 60 inputs) and MLP 150 (down_proj takes 150); `wct quantize` packs it with RTN, GPTQ and OWQ (4 weak columns)
 * 3-bit per row, 4-bit in groups of 30 (dividing every in_features, starting inside 8-code blocks) and 3-bit
 * act-order in groups of 16 (dividing none: a shorter last group; GPTQ and OWQ store a perm). For every checkpoint:
 *  - `wct eval` (the batched panel GEMM) gives the perplexity of the fake-quant model, a dense checkpoint of the
 *    packed weights' dequantization, within PPL_REL, and both stay near the full-precision model's;
 *  - `wct generate` (the m = 1 decode GEMV on every token) gives the fake-quant model's greedy tokens;
 *  - RTN's dequantized weights are the plain reference quantizer (src/quant/quantizer-ref.ts) on each group's
 *    slice with its scales in the file's F16, bit for bit; GPTQ and OWQ lower the GPTQ objective tr((W - Ŵ) H (W - Ŵ)ᵀ) of block 0's q/k/v below
 *    RTN's (H from the calibration windows through the embedding and the input RMSNorm, as the pipeline takes it);
 *  - the packed file round-trips bit for bit.
 * Then `wct-train` tunes the weak columns of the OWQ base for a few steps: the validation loss drops and the
 * exported deltas reload to it. The random matrices have std 0.1 so that predictions are far from uniform and
 * the perplexity reacts to the weights. Children run one OpenMP thread: on a model this small threads only add
 * synchronization (and on a shared 2-core machine, spinning); the kernel tests cover the threaded paths.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readQuantConfig, writePackedCheckpoint } from '../../src/io/packed-checkpoint.js';
import { writeHfCheckpoint } from '../../src/io/checkpoint-write.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/io/dtype.js';
import { resolveTensorName } from '../../src/models/checkpoint-tensors.js';
import { loadModel } from '../../src/models/load.js';
import type { PackedLinear } from '../../src/models/packed-linear.js';
import { dequantize, type PackedWeight } from '../../src/native/packed.js';
import { refFakeQuantize, refFindParams } from '../../src/quant/quantizer-ref.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { wct } from '../helpers/cli.js';
import { dataDir, repoRoot } from '../helpers/paths.js';

const TRAIN_CLI = path.join(repoRoot, 'dist/src/cli/wct-train.js');
const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const ALPACA = path.join(dataDir, 'instruct/alpaca/alpaca-2k.json');
const SHAPE = [
  '--hidden-size',
  '60',
  '--intermediate-size',
  '150',
  '--num-heads',
  '5',
  '--num-kv-heads',
  '1',
  '--layers',
  '2',
];
const NSAMPLES = 16;
const SEQLEN = 256;
/** Packed and fake-quant perplexities agree this closely: the same Ŵ, summed in another order (measured <= 3e-8). */
const PPL_REL = 1e-5;
/** Quantizing this random model moves its perplexity by 0.25-3.5% (measured): far more than PPL_REL, less than this. */
const PPL_NEAR_FP = 0.05;
/** GPTQ's objective on block 0's q/k/v at most this fraction of RTN's (measured 0.88-0.91: the random embeddings make
 * H nearly isotropic, where GPTQ gains least). */
const GPTQ_VS_RTN = 0.95;

interface Setting {
  bits: number;
  groupSize: number;
  /** Its `wct quantize` flags (--act-order applies to GPTQ and OWQ; RTN ignores it). */
  flags: string[];
}
const SETTINGS: Setting[] = [
  { bits: 3, groupSize: 0, flags: ['--wbits', '3'] },
  { bits: 4, groupSize: 30, flags: ['--wbits', '4', '--group-size', '30'] },
  { bits: 3, groupSize: 16, flags: ['--wbits', '3', '--group-size', '16', '--act-order'] },
];
const METHODS = ['rtn', 'gptq', 'owq'] as const;
const methodFlags = { rtn: [], gptq: [], owq: ['--target-rank', '4'] } as const;

let tmp: string;
let fp: string;
let text: string;
let fpPpl: number;

function json(r: ReturnType<typeof wct>) {
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const evalPpl = (dir: string, deltas: string[] = []): number =>
  json(wct(['eval', '--model', dir, ...deltas, '--data', text, '--json'])).ppl;
const greedy = (dir: string): number[] =>
  json(wct(['generate', '--model', dir, '--prompt', 'Once upon a time', '--max-new-tokens', '12', '--json'])).ids;
const ckptName = (method: string, s: Setting) => `${method}-w${s.bits}-g${s.groupSize}`;

beforeAll(() => {
  process.env.OMP_NUM_THREADS = '1';
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-odd-'));
  fp = path.join(tmp, 'fp');
  expect(wct(['init-random', '--like', 'tinystories-656k', ...SHAPE, '--init-std', '0.1', '--out', fp]).status).toBe(0);
  text = path.join(tmp, 'text.txt');
  fs.writeFileSync(
    text,
    fs.readFileSync(path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt'), 'utf8').slice(0, 3000),
  );
  fpPpl = evalPpl(fp);
}, 60_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The packed weights of a checkpoint, by linear name. */
function packedWeights(dir: string): Map<string, PackedWeight> {
  return new Map([...loadModel(dir).linears()].map(([name, layer]) => [name, (layer as PackedLinear).packed]));
}

/** A dense checkpoint beside the packed one: the full-precision model with every packed linear's Ŵ in its place. */
function fakeQuantized(packedDir: string): string {
  const weights = new Map(loadModel(fp).parameters());
  for (const [name, w] of packedWeights(packedDir))
    weights.set(`${name}.weight`, new Tensor(dequantize(w), [w.rows, w.cols]));
  const out = `${packedDir}-fake`;
  writeHfCheckpoint(out, fp, weights, resolveTensorName);
  return out;
}

/**
 * RTN's Ŵ [rows, cols] as the packed file holds it: the reference min-max quantizer's codes and zero points on each
 * group slice w[:, g*G : min((g+1)*G, cols)], times its scales rounded to the file's F16.
 */
function referenceRtn(w: Float32Array, rows: number, cols: number, bits: number, groupSize: number): Float32Array {
  const g = groupSize === 0 ? cols : groupSize;
  const out = new Float32Array(rows * cols);
  for (let c0 = 0; c0 < cols; c0 += g) {
    const width = Math.min(g, cols - c0);
    const slice = Float32Array.from(
      { length: rows * width },
      (_, i) => w[Math.floor(i / width) * cols + c0 + (i % width)],
    );
    const p = refFindParams(slice, rows, width, width, { bits, tuning: 'minmax' });
    const codes = new Uint8Array(rows * width);
    refFakeQuantize(slice, rows, width, p, bits, new Float32Array(rows * width), codes);
    for (let i = 0; i < rows * width; i++) {
      const r = Math.floor(i / width);
      out[r * cols + c0 + (i % width)] = Math.fround(f16BitsToF32(f32ToF16Bits(p.scale[r])) * (codes[i] - p.zero[r]));
    }
  }
  return out;
}

/** Σ x xᵀ [cols, cols] over the calibration tokens' input to block 0's attention: RMSNorm(embedding). */
function block0AttentionHessian(): Float64Array {
  const weights = loadModel(fp).parameters();
  const table = weights.get('model.embed_tokens.weight')!;
  const gamma = weights.get('model.layers.0.input_layernorm.weight')!.data;
  const cols = table.shape[1];
  const windows = (JSON.parse(fs.readFileSync(CALIB, 'utf8')).windows as number[][])
    .slice(0, NSAMPLES)
    .map((w) => w.slice(0, SEQLEN));
  const h = new Float64Array(cols * cols);
  for (const id of windows.flat()) {
    const e = table.data.subarray(id * cols, (id + 1) * cols);
    let sumSq = 0;
    for (const v of e) sumSq += v * v;
    const rms = Math.sqrt(sumSq / cols + 1e-6);
    const x = Array.from(e, (v, j) => (v / rms) * gamma[j]);
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] += x[i] * x[j];
  }
  return h;
}

/** tr(D H Dᵀ), D = W - Ŵ [rows, cols]: the layer's output error on the calibration inputs (GPTQ's objective). */
function outputError(w: Float32Array, wq: Float32Array, h: Float64Array, rows: number, cols: number): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const d = Array.from({ length: cols }, (_, j) => w[r * cols + j] - wq[r * cols + j]);
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) total += d[i] * h[i * cols + j] * d[j];
  }
  return total;
}

describe('odd shapes (in_features 60 and 150) through the CLI', () => {
  const errors = new Map<string, number>(); // checkpoint -> block 0's q/k/v output error
  let hessian: Float64Array | undefined;

  for (const s of SETTINGS) {
    for (const method of METHODS) {
      const name = ckptName(method, s);
      it(`${name}: packed GEMM perplexity = fake-quant's, decode GEMV tokens = fake-quant's`, () => {
        const out = path.join(tmp, name);
        const calib =
          method === 'rtn' ? [] : ['--calib-tokens', CALIB, '--nsamples', String(NSAMPLES), '--seqlen', String(SEQLEN)];
        const r = json(
          wct([
            'quantize',
            '--model',
            fp,
            '--method',
            method,
            ...s.flags,
            ...methodFlags[method],
            ...calib,
            '--out',
            out,
            '--eval',
            text,
            '--json',
          ]),
        );
        expect(Object.values(r.n_out)).toEqual(new Array(7).fill(method === 'owq' ? 4 : 0));
        const fake = fakeQuantized(out);
        const [packedPpl, fakePpl] = [r.ppl[text] as number, evalPpl(fake)];
        expect(Number.isFinite(packedPpl)).toBe(true);
        expect(Math.abs(packedPpl - fakePpl) / fakePpl).toBeLessThan(PPL_REL);
        expect(Math.abs(fakePpl - fpPpl) / fpPpl).toBeLessThan(PPL_NEAR_FP);
        expect(Math.abs(fakePpl - fpPpl) / fpPpl).toBeGreaterThan(100 * PPL_REL);
        expect(greedy(out)).toEqual(greedy(fake));

        const packed = packedWeights(out);
        const dense = loadModel(fp).parameters();
        if (method === 'rtn') {
          for (const [layer, w] of packed) {
            const expected = referenceRtn(
              dense.get(`${layer}.weight`)!.data as Float32Array,
              w.rows,
              w.cols,
              s.bits,
              s.groupSize,
            );
            expect(dequantize(w), layer).toEqual(expected);
          }
        }
        hessian ??= block0AttentionHessian();
        const h = hessian;
        errors.set(
          name,
          ['q_proj', 'k_proj', 'v_proj'].reduce((sum, p) => {
            const w = packed.get(`model.layers.0.self_attn.${p}`)!;
            return (
              sum +
              outputError(
                dense.get(`model.layers.0.self_attn.${p}.weight`)!.data as Float32Array,
                dequantize(w),
                h,
                w.rows,
                w.cols,
              )
            );
          }, 0),
        );
      });
    }

    it(`w${s.bits} g${s.groupSize}: GPTQ and OWQ lower block 0's q/k/v output error below RTN's`, () => {
      const [rtn, gptq, owq] = METHODS.map((m) => errors.get(ckptName(m, s))!);
      expect(gptq).toBeLessThan(GPTQ_VS_RTN * rtn);
      expect(owq).toBeLessThan(gptq);
    });
  }

  it('unaligned packed checkpoints (OWQ act-order groups with perm and weak columns; RTN groups of 30) round-trip bit for bit', () => {
    for (const name of [ckptName('owq', SETTINGS[2]), ckptName('rtn', SETTINGS[1])]) {
      const out = path.join(tmp, name);
      const again = `${out}-again`;
      const w = packedWeights(out);
      expect(w.get('model.layers.0.mlp.down_proj')!.cols).toBe(150);
      writePackedCheckpoint(
        again,
        {
          sourceDir: out,
          storedName: resolveTensorName,
          weights: loadModel(out).parameters(),
          packed: w,
          quantConfig: readQuantConfig(out),
        },
        false,
      );
      const bytes = (d: string) => fs.readFileSync(path.join(d, 'model.safetensors'));
      expect(Buffer.compare(bytes(out), bytes(again)), name).toBe(0);
    }
  });

  it('wct-train tunes the weak columns of the OWQ base: the validation loss drops and the deltas reload', () => {
    const base = path.join(tmp, ckptName('owq', SETTINGS[0]));
    const run = path.join(tmp, 'train');
    const recipe = path.join(tmp, 'train.yaml');
    fs.writeFileSync(
      recipe,
      [
        `model: { path: ${base} }`,
        'method: wct',
        `data: { path: ${ALPACA}, format: alpaca, template: alpaca, max_length: 128, validation: { count: 8 } }`,
        'train: { steps: 6, micro_batch: 2, grad_accum: 1, optimizer: { lr: 0.01 }, schedule: { kind: constant, warmup_steps: 0 } }',
        'eval: { every: 6, final: [] }',
        `output: { dir: ${run}, save_every: 6, keep: 1 }`,
        'logging: { every: 6 }',
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, [TRAIN_CLI, recipe, '--json'], {
      encoding: 'utf8',
      timeout: 120_000,
      cwd: repoRoot,
    });
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.train.valLossAfter).toBeLessThan(summary.train.valLossBefore);
    expect(Math.abs(summary.valLossReloaded - summary.train.valLossAfter)).toBeLessThan(1e-6);
    const tuned = evalPpl(base, ['--deltas', path.join(run, 'weak_deltas.safetensors')]);
    expect(Number.isFinite(tuned)).toBe(true);
    expect(tuned).not.toBe(evalPpl(base));
  });
});
