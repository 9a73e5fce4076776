/**
 * Weak Column Tuning step benchmark (issue 4): an opt-125m-shaped random model, every linear packed to
 * 3 bits with 8 weak columns (OWQ with an identity Hessian: no calibration, same shapes and kernels as a
 * calibrated model), one training step = forward + backward through the packed kernels + AdamW on the
 * weak columns, batch 1 x seqlen 512; figures: step time, tokens/s, trainable parameters, peak RSS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backward, crossEntropy, zeroGrad } from '../src/autograd/index.js';
import { shiftedTargets } from '../src/eval/perplexity.js';
import { initRandom } from '../src/models/init-random.js';
import { loadModel } from '../src/models/load.js';
import { AdamW } from '../src/train/adamw.js';
import { weakParameters } from '../src/train/wct.js';
import { Rng } from '../src/util/rng.js';
import { packEveryLinear } from './pack-every-linear.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { hostMachine, writeReport, type Row } from './report.js';

const BITS = 3;
const WEAK = 8;
const SEQLEN = 512;

function stepRows(dir: string): Row[] {
  const model = loadModel(dir);
  packEveryLinear(model, { bits: BITS, weak: WEAK, dtype: 'f32' });
  const { params } = weakParameters(model);
  for (const p of params) p.requiresGrad = true; // as the trainer does
  const opt = new AdamW(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const rng = new Rng(5);
  const ids = Int32Array.from({ length: SEQLEN }, () => Math.floor(rng.next() * model.config.vocabSize));
  const targets = shiftedTargets(ids, SEQLEN);
  const step = () => {
    zeroGrad(params);
    backward(crossEntropy(model.forward(ids, { batch: 1 }), targets));
    opt.step(1e-4);
  };
  step(); // warm-up
  const iters = 3;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) step();
  const seconds = (performance.now() - t0) / 1000 / iters;
  return [
    {
      model: 'opt-125m-shaped (random), 3-bit, 8 weak columns per linear',
      'batch x seqlen': `1 x ${SEQLEN}`,
      'step s': seconds,
      'tokens/s': SEQLEN / seconds,
      'trainable params': params.reduce((n, p) => n + p.size, 0),
      'optimizer state KiB': opt.stateBytes() / 1024,
      'peak RSS MiB': process.resourceUsage().maxRSS / 1024,
    },
  ];
}

/** Runs the training-step benchmark and writes bench/results/train.{json,md}; returns the markdown path. */
export function runTrainBench(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bench-train-'));
  try {
    initRandom({ like: 'opt-125m', out: dir, seed: 0 });
    process.stderr.write('bench: WCT training step\n');
    return writeReport({
      name: 'train',
      machine: hostMachine(),
      sections: [
        { title: 'Weak Column Tuning step (forward + backward through packed weights + AdamW)', rows: stepRows(dir) },
      ],
    }).md;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'node dist/bench/train.js',
    describe:
      'The Weak Column Tuning step of an opt-125m-shaped model packed to 3 bits with 8 weak columns: step time, tokens/s, trainable parameters, peak RSS. Writes bench/results/train.{json,md} and prints the markdown (part of `npm run bench`).',
  });
  process.stdout.write(fs.readFileSync(runTrainBench(), 'utf8'));
}
