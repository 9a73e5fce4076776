/**
 * packedLinear on the tape: a float64 finite-difference check through the reference (x, weak, bias),
 * the native float32 op against the reference, and PackedLinear over a shared weak buffer.
 */
import { describe, expect, it } from 'vitest';
import * as ag from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { PackedLinear } from '../../src/models/packed-linear.js';
import type { PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, rand32, rand64 } from './helpers.js';
import { randomPacked } from './packed-helpers.js';

const { w } = randomPacked({ rows: 5, cols: 16, bits: 3, groupSize: 8, perm: true, nOut: 3, seed: 7 });

/** sum(y * p) for a fixed random p: a scalar that sees every output. */
function project(y: Tensor): Tensor {
  const p = rand64(y.size, 99);
  return ag.sum(ag.mul(y, new Tensor(y.dtype === 'f64' ? p : Float32Array.from(p), y.shape)));
}

describe('packedLinear', () => {
  it('float64 gradients of x, weak and bias match finite differences', () => {
    const w64: PackedWeight<Float64Array> = {
      ...w,
      scales: Float64Array.from(w.scales),
      weak: Float64Array.from(w.weak),
      outliers: undefined,
    };
    const x = new Tensor(rand64(2 * 3 * 16, 1), [2, 3, 16]);
    const weak = new Tensor(w64.weak, [5, 3]);
    const bias = new Tensor(rand64(5, 2), [5]);
    const r = gradcheck(() => project(ag.packedLinear(x, w64, weak, bias)), [x, weak, bias]);
    expect(r.checks).toBeGreaterThan(0);
    expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
  });

  it('native float32 forward and backward equal the reference', () => {
    const run = <F extends Float32Array | Float64Array>(wt: PackedWeight<F>, xData: F, bData: F) => {
      const x = new Tensor(xData, [3, 16], true);
      const weak = new Tensor(wt.weak, [5, 3], true);
      const bias = new Tensor(bData, [5], true);
      const y = ag.packedLinear(x, wt, weak, bias);
      ag.backward(project(y));
      return [y.data, x.gradData!, weak.gradData!, bias.gradData!];
    };
    const native = run(w, rand32(48, 3), rand32(5, 4));
    const w64: PackedWeight<Float64Array> = {
      ...w,
      scales: Float64Array.from(w.scales),
      weak: Float64Array.from(w.weak),
      outliers: undefined,
    };
    const ref = run(w64, Float64Array.from(rand32(48, 3)), Float64Array.from(rand32(5, 4)));
    native.forEach((a, i) => expectClose(a, ref[i], { rtol: 1e-5, atol: 1e-5 }, `output ${i}`));
  });

  it('at an unaligned in_features (13, groups of 5 with perm): float64 gradients match finite differences, native equals the reference', () => {
    const { w: odd } = randomPacked({ rows: 4, cols: 13, bits: 4, groupSize: 5, perm: true, nOut: 2, seed: 8 });
    const odd64: PackedWeight<Float64Array> = {
      ...odd,
      scales: Float64Array.from(odd.scales),
      weak: Float64Array.from(odd.weak),
      outliers: undefined,
    };
    const x = new Tensor(rand64(3 * 13, 1), [3, 13]);
    const r = gradcheck(() => project(ag.packedLinear(x, odd64, new Tensor(odd64.weak, [4, 2]), null)), [x]);
    expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
    const grads = <F extends Float32Array | Float64Array>(wt: PackedWeight<F>, xData: F) => {
      const xt = new Tensor(xData, [3, 13], true);
      const weak = new Tensor(wt.weak, [4, 2], true);
      const y = ag.packedLinear(xt, wt, weak, null);
      ag.backward(project(y));
      return [y.data, xt.gradData!, weak.gradData!];
    };
    const ref = grads(odd64, Float64Array.from(rand32(39, 3)));
    grads(odd, rand32(39, 3)).forEach((a, i) => expectClose(a, ref[i], { rtol: 1e-5, atol: 1e-5 }, `output ${i}`));
  });

  it('returns no gradient for a frozen weak and skips dX when x needs none', () => {
    const layer = new PackedLinear(w, null);
    const x = new Tensor(rand32(16, 5), [1, 16]);
    expect(layer.forward(x).requiresGrad).toBe(false);
    layer.weak.requiresGrad = true;
    const y = layer.forward(x);
    ag.backward(ag.sum(y));
    expect(layer.weak.grad).not.toBeNull();
    expect(x.grad).toBeNull();
    layer.weak.requiresGrad = false;
    layer.weak.grad = null;
  });

  it('rejects a weak tensor that is not over the packed weak buffer', () => {
    const x = new Tensor(rand32(16, 5), [1, 16]);
    expect(() => ag.packedLinear(x, w, new Tensor(w.weak.slice(), [5, 3]), null)).toThrow(
      /weak .* must be the \[5, 3\] tensor/,
    );
    expect(() => ag.packedLinear(new Tensor(rand32(8, 1), [1, 8]), w, null, null)).toThrow(
      /does not match packed weight/,
    );
  });
});

describe('PackedLinear', () => {
  it('equals a dense linear over the dequantized weight, and sees updates of its weak tensor', () => {
    const bias = new Tensor(rand32(5, 6), [5]);
    const layer = new PackedLinear(w, bias);
    expect([layer.inFeatures, layer.outFeatures]).toEqual([16, 5]);
    expect(layer.weak.data).toBe(w.weak);
    const x = new Tensor(rand32(4 * 16, 7), [4, 16]);
    const dense = () => ag.linear(x, new Tensor(pref.dequantize(w), [5, 16]), bias).data;
    expectClose(layer.forward(x).data, dense(), { rtol: 1e-5, atol: 1e-6 }, 'before');
    layer.weak.data[0] += 0.5;
    expectClose(layer.forward(x).data, dense(), { rtol: 1e-5, atol: 1e-6 }, 'after a weak update');
    layer.weak.data[0] -= 0.5;
  });

  it('validates the packed weight on construction', () => {
    expect(() => new PackedLinear({ ...w, scales: new Float32Array(1) }, null)).toThrow(
      /^PackedLinear: scales has 1 elements/,
    );
  });
});
