/**
 * Optimizer step benchmark (issue 17): AdamW over every parameter of an opt-125m-shaped model (the real shapes
 * of configs/models/opt-125m.json, tied head omitted: 125M elements), as the trainer runs it (src/train/adamw.ts:
 * one `adamwMany` call over every parameter, after the clipping norm's `sumSquaresInto` over every gradient).
 * Figures, in one run and interleaved round by round (the machine is shared; ratios are what to read):
 *  - the native fused kernel vs the TypeScript reference (ratio), at the pool's threads and at 1;
 *  - adamwMany (one parallel region for all the tensors) vs one adamw call per tensor vs one call on one flat
 *    buffer holding all 125M elements (the floor);
 *  - the bytes it moves (theta, g, m, v read; theta, m, v written: 28 per element) per second, as a fraction of
 *    the read bandwidth (bench/packed.ts's probe) taken in the same round;
 *  - the clipping norm's sum of squares over every gradient, native vs reference.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expectedTensorShapes, headTensorNames } from '../src/models/checkpoint-tensors.js';
import { parseConfig } from '../src/models/families/registry.js';
import { loadNative } from '../src/native/addon.js';
import { referenceKernels } from '../src/native/ref.js';
import type { AdamWStepParams, Kernels } from '../src/native/types.js';
import { numel } from '../src/tensor/tensor.js';
import { packageRoot } from '../src/util/package-root.js';
import { Rng } from '../src/util/rng.js';
import { median, readBandwidth } from './packed.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { hostMachine, writeReport, type Row } from './report.js';

const ROUNDS = 5;
/** Bytes AdamW moves per element: four fp32 arrays read, three written. */
const BYTES_PER_ELEMENT = 7 * 4;

/** The trainable tensors' sizes of the opt-125m-shaped model (the tied lm_head is the embedding). */
function opt125mSizes(): number[] {
  const file = path.join(packageRoot(), 'configs', 'models', 'opt-125m.json');
  const config = parseConfig(JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>, file);
  const head = headTensorNames(config).lmHead;
  return [...expectedTensorShapes(config)]
    .filter(([name]) => !(name === head && config.tieWordEmbeddings))
    .map(([, shape]) => numel(shape));
}

/** One flat buffer per array and each parameter's view into it (so per-tensor and one-call runs share memory). */
interface Flat {
  theta: Float32Array;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
  views: { theta: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array }[];
}

function flatState(sizes: number[]): Flat {
  const total = sizes.reduce((s, n) => s + n, 0);
  const rng = new Rng(17);
  const [theta, g] = [0, 1].map(() => Float32Array.from({ length: total }, () => (rng.next() - 0.5) * 0.04));
  const [m, v] = [new Float32Array(total), new Float32Array(total)];
  let o = 0;
  const views = sizes.map((n) => {
    const at = (a: Float32Array) => a.subarray(o, o + n);
    const view = { theta: at(theta), g: at(g), m: at(m), v: at(v) };
    o += n;
    return view;
  });
  return { theta, g, m, v, views };
}

function seconds(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

function params(t: number): AdamWStepParams {
  const [beta1, beta2] = [0.9, 0.999];
  return {
    lr: 2e-4,
    beta1,
    beta2,
    eps: 1e-8,
    weightDecay: 0.01,
    c1: 1 - beta1 ** t,
    c2: 1 - beta2 ** t,
    gradScale: 0.5,
  };
}

function optimizerRows(sizes: number[]): { rows: Row[]; bandwidth: number } {
  const native = loadNative();
  const threads = native.threads();
  const s = flatState(sizes);
  let t = 0;
  const perTensor = (k: Kernels<Float32Array>) => () => {
    const p = params(++t);
    for (const w of s.views) k.adamw(w.theta, w.g, w.m, w.v, p);
  };
  const atThreads = (n: number, f: () => void) => () => {
    native.setThreads(n);
    f();
    native.setThreads(threads);
  };
  const norm = (k: Kernels<Float32Array>) => () => {
    const out = new Float32Array(1);
    for (const w of s.views) k.sumSquaresInto(w.g, out);
  };
  const many = () => {
    const pick = (k: 'theta' | 'g' | 'm' | 'v') => s.views.map((w) => w[k]);
    native.adamwMany(pick('theta'), pick('g'), pick('m'), pick('v'), params(++t));
  };
  const cases: [string, () => void][] = [
    ['AdamW, TypeScript reference (one call per tensor)', perTensor(referenceKernels)],
    [`AdamW, native, ${threads} threads, adamwMany (the trainer's one call)`, many],
    [`AdamW, native, ${threads} threads, one adamw call per tensor`, perTensor(native)],
    [
      `AdamW, native, ${threads} threads, one adamw call on the flat buffers`,
      () => native.adamw(s.theta, s.g, s.m, s.v, params(++t)),
    ],
    ['AdamW, native, 1 thread, adamwMany', atThreads(1, many)],
    ['clipping norm (sumSquaresInto), TypeScript reference', norm(referenceKernels)],
    [`clipping norm (sumSquaresInto), native, ${threads} threads`, norm(native)],
  ];
  for (const [, f] of cases) f(); // warm-up: page in every buffer
  const times = cases.map(() => [] as number[]);
  const bandwidth: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    bandwidth.push(readBandwidth());
    cases.forEach(([, f], i) => times[i].push(seconds(f)));
  }
  const total = s.theta.length;
  const [refAdamw] = times;
  const normAt = cases.length - 2;
  const refNorm = times[normAt];
  const rows = cases.map(([name], i) => {
    const isNorm = i >= normAt;
    const bytes = total * (isNorm ? 4 : BYTES_PER_ELEMENT);
    const perRound = (base: number[]) => median(times[i].map((x, r) => base[r] / x));
    return {
      step: name,
      's (median)': median(times[i]),
      'vs reference': perRound(isNorm ? refNorm : refAdamw),
      'GB/s': bytes / median(times[i]) / 1e9,
      'of read BW': median(times[i].map((x, r) => bytes / x / 1e9 / bandwidth[r])),
    };
  });
  return { rows, bandwidth: median(bandwidth) };
}

/** Runs the optimizer benchmark and writes bench/results/optimizer.{json,md}; returns the markdown path. */
export function runOptimizerBench(): string {
  const sizes = opt125mSizes();
  process.stderr.write('bench: optimizer step\n');
  const { rows, bandwidth } = optimizerRows(sizes);
  const elements = sizes.reduce((s, n) => s + n, 0);
  return writeReport({
    name: 'optimizer',
    machine: { ...hostMachine(), 'read bandwidth GB/s (median of the rounds)': bandwidth },
    sections: [
      {
        title: `AdamW step over the opt-125m-shaped model's ${sizes.length} tensors (${(elements / 1e6).toFixed(1)}M elements; ${BYTES_PER_ELEMENT} bytes moved per element for AdamW, 4 for the norm), ${ROUNDS} interleaved rounds, medians; "of read BW" is the median of each round's ratio to the read bandwidth probed at its start`,
        rows,
      },
    ],
  }).md;
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'node dist/bench/optimizer.js',
    describe:
      "The AdamW step over an opt-125m-shaped model's 125M parameters: native vs the TypeScript reference, adamwMany vs per-tensor calls, bytes moved against the read bandwidth, and the clipping norm. Writes bench/results/optimizer.{json,md} and prints the markdown (part of `npm run bench`).",
  });
  process.stdout.write(fs.readFileSync(runOptimizerBench(), 'utf8'));
}
