/**
 * A GWQ checkpoint on the GPU (llvmpipe here): TinyStories-656K quantized in the test with `method: gwq` (3 bits,
 * groups of 128, CSR outliers in its linears, no weak columns), loaded with its outliers on the device. Its
 * logits, loss and perplexity are the CPU's on the same checkpoint; the outliers' gradients are the CPU's; and
 * one outlier-tuning step of the trainer (train.trainable outliers) gives the CPU's trained values and
 * validation loss, the values copied back into the host weight.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backward, crossEntropy } from '../../src/autograd/index.js';
import { loadDataset } from '../../src/data/dataset.js';
import { evaluateData } from '../../src/eval/evaluate-data.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import type { PackedLinear } from '../../src/models/packed-linear.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { hostValues, readScalars, toHost } from '../../src/tensor/device.js';
import { RunLog } from '../../src/train/run-log.js';
import { type TrainResult, train } from '../../src/train/trainer.js';
import { wctParameters } from '../../src/train/wct.js';
import { LOGIT_ABS_TOL } from '../helpers/golden-logits.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';
import { testTrainConfig } from '../helpers/train-config.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();

const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const SAMPLE = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const IDS = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
const TARGETS = shiftedTargets(IDS, 5);
/** The loss of the same values on both devices, f32 kernels with different summation orders (as models.test.ts). */
const LOSS_REL_TOL = 1e-5;
/** One packed checkpoint evaluated on the GPU and on the CPU (as test/gpu/cli.test.ts and quantize.test.ts). */
const EVAL_REL_TOL = 1e-4;
/** f32 gradients through f32 kernels on both devices, different summation orders (as half-models.test.ts). */
const GRAD_REL_TOL = 1e-4;
/**
 * AdamW's eps of the training step. At the default 1e-8 the first step, lr g / (|g| + eps), amplifies the relative
 * error of gradients near eps (a -9e-5 one clipped to ~2e-8 moved 0.00627 on the CPU, 0.00634 on the GPU); at 1,
 * above every clipped gradient (max_grad_norm 1), it is near-linear in g: within lr times the gradients' error.
 */
const ADAM_EPS = 1;

let tmp = '';
let gwq = '';
/** The first 4500 characters of the sample (two 512-token windows, as test/gpu/cli.test.ts). */
let short = '';
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-gpu-gwq-'));
  gwq = path.join(tmp, 'gwq');
  await quantizeCheckpoint(
    tinyStoriesDir,
    gwq,
    quantizeOptions({ method: 'gwq', wbits: 3, group_size: 128, calib_tokens: CALIB }),
    { force: false },
  );
  short = path.join(tmp, 'short.txt');
  fs.writeFileSync(short, fs.readFileSync(SAMPLE, 'utf8').slice(0, 4500));
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |a - b| / max |b|. */
function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const scale = maxAbsDiff(b, new Float32Array(b.length));
  return maxAbsDiff(a, b) / (scale || 1);
}

/** The checkpoint's packed linears, each with outliers (GWQ gives every one some) and no weak columns. */
function outlierLayers(model: CausalLM): PackedLinear[] {
  const layers = [...packedLinearsOf(model).values()];
  expect(layers.length).toBeGreaterThan(0);
  for (const l of layers) {
    expect(l.outliers, 'outliers').not.toBeNull();
    expect(l.weak.size, 'weak columns').toBe(0);
  }
  return layers;
}

describe('a GWQ checkpoint (CSR outliers) on the GPU', () => {
  it('the CPU’s logits, loss and perplexity, the outliers on the device', async () => {
    const tokenizer = loadTokenizer(gwq);
    const model = loadModel(gwq);
    const layers = outlierLayers(model);
    const logitsCpu = model.forward(IDS, { batch: 2 });
    const lossCpu = crossEntropy(logitsCpu, TARGETS).data[0];
    const pplCpu = (await evaluateData(model, tokenizer, short)).ppl;
    await model.toDevice(gpu().ctx);
    for (const l of layers) {
      expect(l.gpuWeight?.nnz).toBe(l.outliers!.size);
      expect(l.outliers!.storage).toBe(l.gpuWeight?.outlierValues);
    }
    const logitsGpu = model.forward(IDS, { batch: 2 });
    expect(maxAbsDiff(await toHost(logitsGpu), logitsCpu.data)).toBeLessThan(LOGIT_ABS_TOL);
    const [lossGpu] = await readScalars([crossEntropy(logitsGpu, TARGETS).storage]);
    expect(Math.abs(lossGpu - lossCpu) / lossCpu).toBeLessThan(LOSS_REL_TOL);
    const pplGpu = (await evaluateData(model, tokenizer, short)).ppl;
    expect(Math.abs(pplGpu - pplCpu) / pplCpu).toBeLessThan(EVAL_REL_TOL);
    console.log(`GWQ 3-bit TinyStories-656K: ppl ${pplCpu} on the CPU, ${pplGpu} on the GPU (short sample)`);
  });

  it('the outliers’ gradients, and one outlier-tuning step of the trainer, are the CPU’s', async () => {
    const grads = async (onGpu: boolean): Promise<Float32Array[]> => {
      const model = loadModel(gwq);
      const layers = outlierLayers(model);
      if (onGpu) await model.toDevice(gpu().ctx);
      for (const l of layers) l.outliers!.requiresGrad = true;
      backward(crossEntropy(model.forward(IDS, { batch: 2 }), TARGETS));
      return Promise.all(layers.map(async (l) => Float32Array.from(await hostValues(l.outliers!.grad!))));
    };
    const [gradCpu, gradGpu] = [await grads(false), await grads(true)];
    gradGpu.forEach((g, i) => expect(maxRelDiff(g, gradCpu[i]), `grad ${i}`).toBeLessThan(GRAD_REL_TOL));

    const data = loadDataset(
      {
        path: SAMPLE,
        format: 'text',
        template: 'alpaca',
        maxLength: 64,
        validation: { count: 2 },
        shuffleSeed: 0,
        packing: true,
      },
      loadTokenizer(gwq),
    );
    const step = async (
      onGpu: boolean,
    ): Promise<{ result: TrainResult; values: Float32Array[]; before: Float32Array[] }> => {
      const model = loadModel(gwq);
      const layers = outlierLayers(model);
      const before = layers.map((l) => l.packed.outliers!.values.slice());
      if (onGpu) await model.toDevice(gpu().ctx);
      const dir = path.join(tmp, onGpu ? 'train-gpu' : 'train-cpu');
      const cfg = testTrainConfig(dir, { steps: 1, eps: ADAM_EPS });
      const result = await train(model, wctParameters(model, 'outliers'), data, cfg, (s) => {
        return new RunLog({ dir, tensorboardDir: null, resumeFromStep: s });
      });
      if (onGpu) await model.toDevice(null);
      // back on the host, the trained values are the host weight's
      for (const l of layers) expect(l.outliers!.storage).toBe(l.packed.outliers!.values);
      return { result, values: layers.map((l) => l.packed.outliers!.values), before };
    };
    const cpu = await step(false);
    const dev = await step(true);
    cpu.values.forEach((v, i) => expect(v, `layer ${i} moved`).not.toEqual(cpu.before[i]));
    // the step is lr g / (|g| + 1) for the clipped g (|g| <= 1): it moves by at most lr times the gradient's error
    const { lr } = testTrainConfig(tmp);
    let worst = 0;
    dev.values.forEach((v, i) => {
      const want = cpu.values[i];
      for (let j = 0; j < v.length; j++) {
        const bound = GRAD_REL_TOL * lr + 2 ** -23 * Math.abs(want[j]);
        worst = Math.max(worst, Math.abs(v[j] - want[j]) / bound);
      }
    });
    console.log(`outlier step: trained values within ${worst} of their bound`);
    expect(worst).toBeLessThanOrEqual(1);
    const [a, b] = [cpu.result.valLossAfter, dev.result.valLossAfter];
    expect(Math.abs(b - a) / a).toBeLessThan(LOSS_REL_TOL);
  });
});
