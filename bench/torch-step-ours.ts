/**
 * Our side of bench/torch-step.ts: a worker process that answers the same JSON-line commands as the PyTorch side
 * (bench/torch/step.py, whose header lists them), so each side's peak RSS is its own process's:
 *  - forward: the model's forward and loss without a tape (no parameter requires a gradient);
 *  - step: zeroGrad, forward, backward, the clipping norm (max 1) and one AdamW update, timed per phase as
 *    bench/step-profile.ts splits them; on a `full` model every weight trains, on a `wct` (packed) model the weak
 *    columns of every packed linear (src/train/wct.ts).
 */
import readline from 'node:readline';
import { backward, crossEntropy, zeroGrad } from '../src/autograd/index.js';
import { loadModel } from '../src/models/load.js';
import type { CausalLM } from '../src/models/model.js';
import { loadNative } from '../src/native/addon.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { AdamW, clipScale, gradNorm } from '../src/train/adamw.js';
import { wctParameters } from '../src/train/wct.js';

interface Command {
  cmd: 'threads' | 'load' | 'free' | 'forward' | 'step';
  n?: number;
  kind?: 'full' | 'wct';
  dir?: string;
  ids?: number[];
  targets?: number[];
}

interface Loaded {
  model: CausalLM;
  params: Tensor[];
  opt: AdamW;
  ids: Int32Array;
  targets: Int32Array;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

function load(c: Command): Loaded {
  const model = loadModel(c.dir!);
  const params = c.kind === 'wct' ? wctParameters(model).params : [...model.parameters().values()];
  for (const p of params) p.requiresGrad = true;
  const opt = new AdamW(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  return { model, params, opt, ids: Int32Array.from(c.ids!), targets: Int32Array.from(c.targets!) };
}

function lossOf(m: Loaded): Tensor {
  return crossEntropy(m.model.forward(m.ids, { batch: 1 }), m.targets);
}

function forward(m: Loaded): Record<string, number> {
  for (const p of m.params) p.requiresGrad = false;
  const t0 = performance.now();
  const loss = lossOf(m);
  const forwardS = seconds(t0);
  for (const p of m.params) p.requiresGrad = true;
  return { forward_s: forwardS, loss: loss.data[0] };
}

async function step(m: Loaded): Promise<Record<string, number>> {
  zeroGrad(m.params);
  const t0 = performance.now();
  const loss = lossOf(m);
  const t1 = performance.now();
  backward(loss);
  const t2 = performance.now();
  m.opt.step(1e-4, clipScale(await gradNorm(m.params), 1));
  return { forward_s: (t1 - t0) / 1000, backward_s: (t2 - t1) / 1000, optimizer_s: seconds(t2), loss: loss.data[0] };
}

async function answer(c: Command, state: { loaded: Loaded | null }): Promise<Record<string, number>> {
  switch (c.cmd) {
    case 'threads':
      loadNative().setThreads(c.n!);
      return {};
    case 'load':
      state.loaded = load(c);
      return {};
    case 'free':
      state.loaded = null;
      return {};
    case 'forward':
      return forward(state.loaded!);
    case 'step':
      return step(state.loaded!);
  }
}

const state: { loaded: Loaded | null } = { loaded: null };
for await (const line of readline.createInterface({ input: process.stdin })) {
  const reply = await answer(JSON.parse(line) as Command, state);
  process.stdout.write(`${JSON.stringify({ ...reply, peak_mib: process.resourceUsage().maxRSS / 1024 })}\n`);
}
