/**
 * Gradient checkpointing (src/autograd/checkpoint.ts): a forward with every block checkpointed gives the same loss
 * and, bit for bit, the same gradient of every trained tensor as the recorded forward: with all weights trained
 * (TinyStories) and with only the weak columns of packed linears trained (WCT, where block 0's input needs no
 * gradient), for both families; a checkpointed block holds no node of its own ops, and with a sink the leaves' gradients reach it as
 * in a plain backward.
 */
import { describe, expect, it } from 'vitest';
import { backward, crossEntropy } from '../../src/autograd/index.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { packEveryLinear } from '../helpers/pack-every-linear.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const MODELS = [
  ['TinyStories-656K', tinyStoriesDir],
  ['opt-tiny-random', optTinyDir],
] as const;

const ids = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12, 40, 8]);
const targets = shiftedTargets(ids, 6);

/** The loss and each trained tensor's gradient (cleared after) of one forward/backward. */
function gradients(model: CausalLM, trained: Tensor[], checkpoint: boolean) {
  const loss = crossEntropy(model.forward(ids, { batch: 2, checkpoint }), targets);
  backward(loss);
  const grads = trained.map((t) => Float32Array.from(t.grad as Float32Array));
  for (const t of trained) t.grad = null;
  return { loss: (loss.data as Float32Array)[0], grads };
}

function expectSame(model: CausalLM, trained: Tensor[]) {
  const plain = gradients(model, trained, false);
  const again = gradients(model, trained, true);
  expect(again.loss).toBe(plain.loss);
  for (const [i, g] of plain.grads.entries()) {
    expect(g.some((v) => v !== 0)).toBe(true);
    expect(again.grads[i]).toEqual(g);
  }
}

describe('gradient checkpointing', () => {
  it('TinyStories-656K, every weight trained: the same loss and gradients, bit for bit', () => {
    const model = loadModel(tinyStoriesDir);
    const trained = [...model.parameters().values()];
    for (const t of trained) t.requiresGrad = true;
    expectSame(model, trained);
  });

  for (const [name, dir] of MODELS) {
    it(`${name}, weak columns of packed linears trained: the same gradients; blocks record no inner nodes`, () => {
      const model = loadModel(dir);
      const weak = packEveryLinear(model, 'f32');
      for (const w of weak) w.requiresGrad = true;
      expectSame(model, weak);
      const logits = model.forward(ids, { batch: 2, checkpoint: true });
      // logits <- head ops <- the last block's output, whose node is the checkpoint holding only its input
      const seen = new Set<string>();
      const stack: Tensor[] = [logits];
      while (stack.length > 0) {
        const t = stack.pop()!;
        if (t.node === null) continue;
        seen.add(t.node.op);
        if (t.node.op !== 'checkpoint') stack.push(...t.node.inputs);
        else expect(t.node.inputs.length).toBe(1);
      }
      expect(seen.has('checkpoint')).toBe(true);
      expect(seen.has('attention')).toBe(false);
    });
  }

  it('a sink receives the leaves of checkpointed blocks as it does without checkpointing', () => {
    const model = loadModel(tinyStoriesDir);
    const weak = packEveryLinear(model, 'f32');
    for (const w of weak) w.requiresGrad = true;
    const collect = (checkpoint: boolean) => {
      const got = new Map<Tensor, Float32Array>();
      const loss = crossEntropy(model.forward(ids, { batch: 2, checkpoint }), targets);
      backward(loss, undefined, (leaf, g) => got.set(leaf, Float32Array.from(g as Float32Array)));
      return got;
    };
    const plain = collect(false);
    const again = collect(true);
    expect(plain.size).toBe(weak.length);
    for (const w of weak) expect(again.get(w)).toEqual(plain.get(w));
    for (const w of weak) expect(w.grad).toBeNull();
  });
});
