/**
 * Whole-model gradient checks: the loss of each tiny model, in float64, differentiated by the tape and by
 * central finite differences along a few random directions in every parameter tensor.
 */
import { describe, expect, it } from 'vitest';
import { crossEntropy } from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

describe('whole-model gradient check (float64)', () => {
  for (const [name, dir] of [
    ['TinyStories-656K', tinyStoriesDir],
    ['opt-tiny-random', optTinyDir],
  ]) {
    it(`${name}: every parameter's gradient along random directions`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      const ids = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
      const targets = shiftedTargets(ids, 5);
      const params = [...model.parameters().values()];
      const r = gradcheck(() => crossEntropy(model.forward(ids, { batch: 2 }), targets), params, {
        directions: 2,
        eps: 1e-5,
        rtol: 1e-5,
      });
      expect(r.checks).toBe(2 * params.length);
      expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
    });
  }
});
