/**
 * The model rows of the GPU bench (bench/gpu.ts's modelStepProvider): forward tokens/s and one Weak Column
 * Tuning step (forward + backward into the weak columns + AdamW) of an opt-125m-shaped and a llama-7b-shaped
 * 2-layer random model, every linear packed to 4 bits with 8 weak columns (bench/pack-every-linear.ts), batch 1,
 * on the CPU and on the GPU in the same run. On a software adapter (llvmpipe) the sequence is 64 tokens instead
 * of 512 and the llama-7b shape is left out (its fp32 embedding alone is 512 MiB); a model whose tensors exceed
 * the adapter's binding limit reports why instead of a time.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backward, crossEntropy, zeroGrad } from '../src/autograd/index.js';
import type { Gpu } from '../src/gpu/device.js';
import { shiftedTargets } from '../src/eval/perplexity.js';
import { initRandom } from '../src/models/init-random.js';
import { loadModel } from '../src/models/load.js';
import type { CausalLM } from '../src/models/model.js';
import { scoped } from '../src/tensor/device.js';
import { AdamW } from '../src/train/adamw.js';
import { Rng } from '../src/util/rng.js';
import type { ModelStepPair, PreparedStep } from './gpu.js';
import { packEveryLinear } from './pack-every-linear.js';

const SHAPES = ['opt-125m', 'llama-7b'] as const;

function tokens(model: CausalLM, seqlen: number) {
  const rng = new Rng(5);
  const ids = Int32Array.from({ length: seqlen }, () => Math.floor(rng.next() * model.config.vocabSize));
  return { ids, targets: shiftedTargets(ids, seqlen) };
}

/** The forward and the WCT step of one packed model, wherever its weights are. */
function steps(model: CausalLM, seqlen: number, sync: () => Promise<void>): [PreparedStep, PreparedStep] {
  const { ids, targets } = tokens(model, seqlen);
  const weak = packEveryLinear(model, { bits: 4, weak: 8, dtype: 'f32' });
  for (const w of weak) w.requiresGrad = true;
  const opt = new AdamW(weak, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const forward = { run: () => scoped(() => void model.forward(ids, { batch: 1 })), sync, tokens: seqlen };
  const step = {
    run: () => {
      zeroGrad(weak);
      scoped(() => backward(crossEntropy(model.forward(ids, { batch: 1 }), targets)));
      opt.step(1e-4);
    },
    sync,
    tokens: seqlen,
  };
  return [forward, step];
}

async function onGpu(dir: string, gpu: Gpu, seqlen: number): Promise<[PreparedStep, PreparedStep] | string> {
  const model = loadModel(dir);
  try {
    const prepared = steps(model, seqlen, () => gpu.device.queue.onSubmittedWorkDone());
    await model.toDevice(gpu.ctx);
    return prepared;
  } catch (e) {
    return (e as Error).message;
  }
}

export async function modelSteps(gpu: Gpu): Promise<ModelStepPair[]> {
  const software = gpu.report.software;
  const seqlen = software ? 64 : 512;
  const pairs: ModelStepPair[] = [];
  for (const like of software ? SHAPES.slice(0, 1) : SHAPES) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `wct-bench-gpu-${like}-`));
    try {
      initRandom({ like, out: path.join(dir, 'm'), seed: 0, layers: 2 });
      const model = `${like}-shaped, 2 layers, 4-bit + 8 weak columns, seqlen ${seqlen}`;
      const cpu = steps(loadModel(path.join(dir, 'm')), seqlen, async () => undefined);
      const g = await onGpu(path.join(dir, 'm'), gpu, seqlen);
      const gpuSteps = typeof g === 'string' ? [null, null] : g;
      const note = typeof g === 'string' ? g : undefined;
      pairs.push({ model, measure: 'forward', cpu: cpu[0], gpu: gpuSteps[0], note });
      pairs.push({ model, measure: 'WCT step', cpu: cpu[1], gpu: gpuSteps[1], note });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return pairs;
}
