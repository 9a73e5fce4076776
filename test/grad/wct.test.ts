/**
 * Weak Column Tuning's gradients: the loss of each tiny model with every linear replaced by a packed
 * 3-bit layer with two weak columns, differentiated (float64, through the packed reference) with respect
 * to the weak columns only, against central finite differences.
 */
import { describe, expect, it } from 'vitest';
import { crossEntropy } from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import { packEveryLinear } from '../helpers/pack-every-linear.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

describe('weak-column gradient check (float64)', () => {
  for (const [name, dir] of [
    ['TinyStories-656K', tinyStoriesDir],
    ['opt-tiny-random', optTinyDir],
  ]) {
    it(`${name}: the loss's gradient with respect to every weak column`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      const weak = packEveryLinear(model, 'f64');
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
