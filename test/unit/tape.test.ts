/** The tape's own checks: a wrong or missing gradient names the op; accumulation over shared inputs. */
import { describe, expect, it } from 'vitest';
import * as ag from '../../src/autograd/index.js';
import { record } from '../../src/autograd/tape.js';
import { Tensor, fromArray } from '../../src/tensor/tensor.js';

describe('autograd tape', () => {
  it('names the op that returns a gradient of the wrong size', () => {
    const x = fromArray([1, 2, 3], [3]);
    x.requiresGrad = true;
    const y = record(new Tensor(new Float32Array(3), [3]), 'bad_op', [x], () => [new Float32Array(2)]);
    expect(() => ag.backward(ag.sum(y))).toThrow(/op 'bad_op'.*2 Float32Array elements, expected 3/);
  });

  it('names the op that forgets a gradient', () => {
    const x = fromArray([1, 2], [2]);
    x.requiresGrad = true;
    const y = record(new Tensor(new Float32Array(2), [2]), 'lazy_op', [x], () => [null]);
    expect(() => ag.backward(ag.sum(y))).toThrow(/op 'lazy_op' gave no gradient/);
  });

  it('accumulates gradients of a tensor used twice, and across backward calls until zeroGrad', () => {
    const x = fromArray([1, -2, 3], [3], 'f64');
    x.requiresGrad = true;
    ag.backward(ag.sum(ag.add(ag.mul(x, x), x))); // d/dx (x^2 + x) = 2x + 1
    expect(Array.from(x.gradData!)).toEqual([3, -3, 7]);
    ag.backward(ag.sum(x));
    expect(Array.from(x.gradData!)).toEqual([4, -2, 8]);
    ag.zeroGrad([x]);
    expect(x.grad).toBeNull();
  });

  it('moves a passed-through gradient to one holder only: the caller seed and a second holder get copies', () => {
    const x = fromArray([1, 2, 3], [3]);
    const y = fromArray([4, 5, 6], [3]);
    x.requiresGrad = true;
    y.requiresGrad = true;
    const seed = Float32Array.of(1, 2, 3);
    ag.backward(ag.reshape(ag.add(x, y), [3, 1]), seed); // add passes the seed on to both inputs
    expect(x.grad).not.toBe(seed);
    expect(y.grad).not.toBe(x.grad);
    ag.backward(ag.reshape(x, [1, 3]), seed);
    expect(Array.from(x.gradData!)).toEqual([2, 4, 6]);
    expect(Array.from(y.gradData!)).toEqual([1, 2, 3]);
    expect(Array.from(seed)).toEqual([1, 2, 3]);
  });

  it('takes a gradient an op added into the one the tape holds (held) as it is, without adding it again', () => {
    const x = fromArray([1, 2], [2]);
    x.requiresGrad = true;
    let sawHeld = false;
    const a = record(new Tensor(new Float32Array(2), [2]), 'fresh', [x], () => [Float32Array.of(1, 1)]);
    const b = record(new Tensor(new Float32Array(2), [2]), 'into_held', [x], (_g, held) => {
      const h = held(0);
      if (h === null) return [Float32Array.of(10, 10)];
      sawHeld = true;
      for (let i = 0; i < h.length; i++) (h as Float32Array)[i] += 10;
      return [h];
    });
    ag.backward(ag.sum(ag.add(a, b)));
    expect(sawHeld).toBe(true);
    expect(Array.from(x.gradData!)).toEqual([11, 11]);
  });

  it('records nothing when no input requires a gradient (inference)', () => {
    const y = ag.relu(fromArray([1, -1], [2]));
    expect(y.node).toBeNull();
    expect(() => ag.backward(y)).toThrow(/does not require a gradient/);
  });
});
