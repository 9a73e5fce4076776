/**
 * LoRA's gradients: the loss of each tiny model (float64, reference kernels) with adapters on every linear
 * of every block, differentiated with respect to every A and B, against central finite differences. B
 * starts non-zero (at PEFT's B = 0 the gradient of A vanishes and would check nothing); dropout 0, since
 * a fresh mask per evaluation is not a function finite differences can probe.
 */
import { describe, expect, it } from 'vitest';
import { crossEntropy } from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import { applyLora, loraParameters } from '../../src/models/lora.js';
import { Rng } from '../../src/util/rng.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

describe('LoRA gradient check (float64)', () => {
  for (const [name, dir] of [
    ['TinyStories-656K', tinyStoriesDir],
    ['opt-tiny-random', optTinyDir],
  ]) {
    it(`${name}: the loss's gradient with respect to every adapter's A and B`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      const layers = applyLora(model, { rank: 4, alpha: 16, dropout: 0, targets: 'all' }, 0);
      const rng = new Rng(9);
      for (const l of layers.values()) for (let i = 0; i < l.b.size; i++) l.b.data[i] = (rng.next() * 2 - 1) * 0.1;
      const { params, setTraining } = loraParameters(layers);
      setTraining(true);
      expect(params.every((p) => p.dtype === 'f64')).toBe(true);
      const ids = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
      const targets = shiftedTargets(ids, 5);
      const r = gradcheck(() => crossEntropy(model.forward(ids, { batch: 2 }), targets), params, {
        directions: 2,
        eps: 1e-5,
        rtol: 1e-5,
      });
      expect(r.checks).toBe(2 * params.length);
      expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
      // the base stays frozen: no gradient reaches any of its tensors
      for (const p of model.parameters().values()) expect(p.grad).toBeNull();
    });
  }
});
