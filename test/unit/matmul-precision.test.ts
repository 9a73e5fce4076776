/** The bf16 matmul switch: linear() on fp32 data rounds its operands to bf16 (oneDNN, fp32 accumulation). */
import { afterEach, describe, expect, it } from 'vitest';
import { linear, setMatmulPrecision } from '../../src/autograd/index.js';
import { f32ToBf16Bits, bf16BitsToF32 } from '../../src/io/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';

afterEach(() => {
  setMatmulPrecision('fp32');
});

describe('setMatmulPrecision', () => {
  it('bf16 equals the fp32 product of bf16-rounded operands; fp32 does not round', () => {
    const rng = new Rng(3);
    const [m, k, n] = [5, 37, 9];
    const x = Float32Array.from({ length: m * k }, () => rng.next() - 0.5);
    const w = Float32Array.from({ length: n * k }, () => rng.next() - 0.5);
    const round = (a: Float32Array) => a.map((v) => bf16BitsToF32(f32ToBf16Bits(v)));
    const expected = linear(new Tensor(round(x), [m, k]), new Tensor(round(w), [n, k])).data;
    const exact = linear(new Tensor(x, [m, k]), new Tensor(w, [n, k])).data;
    expect(setMatmulPrecision('bf16')).toBe('fp32');
    const got = linear(new Tensor(x, [m, k]), new Tensor(w, [n, k])).data;
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - expected[i])).toBeLessThan(1e-5);
    expect(got.some((v, i) => Math.abs(v - exact[i]) > 1e-4)).toBe(true);
  });
});
