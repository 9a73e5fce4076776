/**
 * Weak Column Tuning's gradients: the loss of each tiny model with every linear replaced by a packed
 * 3-bit layer with two weak columns, differentiated (float64, through the packed reference) with respect
 * to the weak columns only, against central finite differences.
 */
import { describe, expect, it } from 'vitest';
import { crossEntropy } from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import type { DenseLinear } from '../../src/models/linear.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { PackedLinear } from '../../src/models/packed-linear.js';
import type { PackedWeight } from '../../src/native/packed.js';
import { owq } from '../../src/quant/owq.js';
import { toPacked } from '../../src/quant/pack.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

/** Packs every linear (OWQ with H = I, 2 weak columns) and returns the float64 weak tensors, now trainable. */
function packAll(model: CausalLM) {
  for (const [name, layer] of [...model.linears()]) {
    const dense = layer as DenseLinear;
    const [rows, cols] = dense.weight.shape;
    const w = Float32Array.from(dense.weight.data);
    const identity = new Float32Array(cols * cols).map((_, i) => (i % (cols + 1) === 0 ? 1 : 0));
    const p = toPacked(
      owq(w, identity, rows, cols, { bits: 3, nOut: 2, tuning: 'minmax', groupSize: 0, actOrder: false }),
    );
    const p64: PackedWeight<Float64Array> = {
      ...p,
      scales: Float64Array.from(p.scales),
      weak: Float64Array.from(p.weak),
    };
    model.setLinear(name, new PackedLinear(p64 as unknown as PackedWeight, dense.bias));
  }
  return [...model.linears().values()].map((l) => (l as PackedLinear).weak);
}

describe('weak-column gradient check (float64)', () => {
  for (const [name, dir] of [
    ['TinyStories-656K', tinyStoriesDir],
    ['opt-tiny-random', optTinyDir],
  ]) {
    it(`${name}: the loss's gradient with respect to every weak column`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      const weak = packAll(model);
      const ids = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
      const targets = shiftedTargets(ids, 5);
      const r = gradcheck(() => crossEntropy(model.forward(ids, { batch: 2 }), targets), weak, {
        directions: 2,
        eps: 1e-5,
        rtol: 1e-5,
      });
      expect(r.checks).toBe(2 * weak.length);
      expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
      // the packed part and everything else stay out of the graph
      for (const p of model.parameters().values()) expect(p.grad).toBeNull();
    });
  }
});
