/**
 * Weak Column Tuning's gradients: the loss of each tiny model with every linear replaced by a packed
 * 3-bit layer with two weak columns, differentiated (float64, through the packed reference) with respect
 * to the weak columns only, against central finite differences; then the same models with GWQ-style sparse
 * outliers in every linear (test/helpers/outliers.ts), differentiated with respect to every outlier value and
 * the first linear's weak columns (whose gradient flows through every later layer's dX, outliers included),
 * and one linear's dX, dWeak and dValues directly.
 */
import { describe, expect, it } from 'vitest';
import { crossEntropy, packedLinear, sum, mul } from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { addOutliers } from '../helpers/outliers.js';
import { packEveryLinear } from '../helpers/pack-every-linear.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const MODELS = [
  ['TinyStories-656K', tinyStoriesDir],
  ['opt-tiny-random', optTinyDir],
] as const;

const ids = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
const targets = shiftedTargets(ids, 5);

describe('weak-column gradient check (float64)', () => {
  for (const [name, dir] of MODELS) {
    it(`${name}: the loss's gradient with respect to every weak column`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      const weak = packEveryLinear(model, 'f64');
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

describe('outlier gradient check (float64)', () => {
  for (const [name, dir] of MODELS) {
    it(`${name}: the loss's gradient with respect to every linear's outlier values and the first weak columns`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      packEveryLinear(model, 'f64');
      const outliers = addOutliers(model, { perRow: 2, seed: 3 });
      const weak = [...packedLinearsOf(model).values()].map((l) => l.weak);
      expect(outliers.length).toBe(weak.length);
      for (const o of outliers) expect(o.data).toBeInstanceOf(Float64Array);
      const r = gradcheck(() => crossEntropy(model.forward(ids, { batch: 2 }), targets), [...outliers, weak[0]], {
        directions: 2,
        eps: 1e-5,
        rtol: 1e-5,
      });
      expect(r.checks).toBe(2 * (outliers.length + 1));
      expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
      for (const p of model.parameters().values()) expect(p.grad).toBeNull();
    });

    it(`${name}: one packed linear with outliers, dX, dWeak and dValues coordinate by coordinate`, () => {
      const model = loadModel(dir, { dtype: 'f64' });
      packEveryLinear(model, 'f64');
      addOutliers(model, { perRow: 3, seed: 5 });
      const layer = [...packedLinearsOf(model).values()][0];
      const w = layer.packed;
      const rng = new Rng(11);
      const x = new Tensor(
        Float64Array.from({ length: 3 * w.cols }, () => rng.next() * 2 - 1),
        [3, w.cols],
      );
      const proj = new Tensor(
        Float64Array.from({ length: 3 * w.rows }, () => rng.next() * 2 - 1),
        [3, w.rows],
      );
      // the outliers are in the product: y changes with them
      const y = packedLinear(x, w, null, null, null).data;
      const saved = w.outliers!.values.slice();
      w.outliers!.values.fill(0);
      const y0 = packedLinear(x, w, null, null, null).data;
      w.outliers!.values.set(saved);
      expect(y.some((v, i) => Math.abs(v - y0[i]) > 1e-3)).toBe(true);
      const f = () => sum(mul(packedLinear(x, w, layer.weak, layer.bias, layer.outliers), proj));
      const r = gradcheck(f, [x, layer.weak, layer.outliers!], { directions: 64 });
      expect(r.checks).toBeGreaterThan(0);
      expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
    });
  }
});
