import { describe, expect, it } from 'vitest';
import { gemmDims, type GemmDims } from '../../src/native/types.js';
import { expectClose, native, rand32, ref, type Tol } from './helpers.js';

/**
 * fp32 GEMM vs the float64-accumulating reference: sgemm's float accumulation error grows with k
 * (inputs are uniform in [-1, 1], so |C| ~ sqrt(k) / 3).
 */
const gemmTol = (k: number): Tol => ({ rtol: 1e-5, atol: 2e-6 * Math.max(1, k) });

/** bf16 keeps 8 significant bits, so rounding to nearest has unit roundoff u = 2^-8 per operand and
 *  |a'b' - ab| <= (2u + u^2)|ab|: per output |C_bf16 - C_fp32| <= BF16_REL * |alpha| * (|A| |B|)_ij,
 *  plus the fp32 accumulation slack. */
const BF16_REL = 2 ** -7 + 2 ** -16;

function extent(batch: number, stride: number, size: number): number {
  return batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size;
}

/** Runs native and reference on the same random operands (C pre-filled) and compares. */
function compare(d: GemmDims, seed: number, label: string): void {
  const a = rand32(extent(d.batch, d.strideA, d.m * d.k), seed);
  const b = rand32(extent(d.batch, d.strideB, d.k * d.n), seed + 1);
  const c0 = rand32(extent(d.batch, d.strideC, d.m * d.n), seed + 2);
  const cn = c0.slice();
  const cr = c0.slice();
  native.gemm(a, b, cn, d);
  ref.gemm(a, b, cr, d);
  const accumulated = d.strideC === 0 && d.batch > 1 ? d.batch : 1; // items summed into one C
  const scale = Math.abs(d.alpha) + Math.abs(d.beta);
  const t = gemmTol(d.k * accumulated);
  expectClose(cn, cr, { rtol: t.rtol, atol: t.atol * scale }, label);
}

/** bf16 round-to-nearest-even of every element, kept as float32. */
function roundBf16(x: Float32Array): Float32Array {
  const out = x.slice();
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) {
    if ((u[i] & 0x7fffffff) > 0x7f800000) continue; // NaN
    u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return out;
}

describe('gemm', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 7, 1],
    [7, 3, 127],
    [127, 129, 7],
    [129, 127, 129],
    [64, 33, 257],
    [1, 129, 3],
  ];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`matches the reference, transA=${transA} transB=${transB}`, () => {
        shapes.forEach(([m, n, k], i) => compare(gemmDims(m, n, k, { transA, transB }), 10 * i, `${m}x${n}x${k}`));
      });
    }
  }

  it('applies alpha and beta', () => {
    compare(gemmDims(7, 129, 127, { alpha: 0.5, beta: -1.5 }), 1, 'alpha/beta');
    compare(gemmDims(127, 3, 7, { alpha: -2, beta: 1, transA: true }), 2, 'alpha/beta transA');
  });

  it('treats C as write-only when beta is 0 (NaN in C does not propagate)', () => {
    const c = new Float32Array(3 * 7).fill(NaN);
    native.gemm(rand32(3 * 5, 1), rand32(5 * 7, 2), c, gemmDims(3, 7, 5));
    expect(c.every((x) => Number.isFinite(x))).toBe(true);
  });

  it('scales C by beta when k is 0', () => {
    const c = Float32Array.from([1, 2, 3, 4, 5, 6]);
    native.gemm(new Float32Array(0), new Float32Array(0), c, gemmDims(2, 3, 0, { beta: 2 }));
    expect(Array.from(c)).toEqual([2, 4, 6, 8, 10, 12]);
  });

  it('runs batches with dense strides, in all transpose combos', () => {
    for (const [transA, transB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      // small items: one sgemm per thread; large items: sequential multithreaded sgemm calls
      for (const [m, n, k] of [
        [7, 3, 5],
        [129, 127, 257],
      ] as const) {
        compare(
          gemmDims(m, n, k, { batch: 5, transA, transB, strideA: m * k, strideB: k * n, strideC: m * n, beta: 0.5 }),
          3,
          `batched ${m}x${n}x${k}`,
        );
      }
    }
  });

  it('broadcasts a stride-0 operand over the batch', () => {
    compare(gemmDims(7, 9, 11, { batch: 4, strideA: 77, strideB: 0, strideC: 63 }), 4, 'strideB 0');
    compare(gemmDims(7, 9, 11, { batch: 4, strideA: 0, strideB: 99, strideC: 63, transB: true }), 5, 'strideA 0');
    compare(gemmDims(3, 5, 2, { batch: 3, strideA: 100, strideB: 10, strideC: 20 }), 6, 'padded strides');
  });

  it('accumulates sequentially into a stride-0 C with beta 1', () => {
    compare(gemmDims(5, 6, 7, { batch: 4, strideA: 35, strideB: 42, strideC: 0, beta: 1 }), 7, 'strideC 0');
  });
});

describe('gemmBf16', () => {
  it(`stays within the bf16 bound ${BF16_REL.toExponential(3)} * |alpha| * (|A||B|) of fp32`, () => {
    for (const [m, n, k, transA, transB, alpha, beta] of [
      [1, 1, 1, false, false, 1, 0],
      [7, 3, 127, false, true, 1, 0],
      [127, 129, 7, true, false, 0.5, 1],
      [129, 127, 129, true, true, -1, 0.25],
      [64, 256, 768, false, false, 1, 0],
    ] as const) {
      const d = gemmDims(m, n, k, { transA, transB, alpha, beta });
      const a = rand32(m * k, m);
      const b = rand32(k * n, n);
      const c0 = rand32(m * n, k);
      const c16 = c0.slice();
      const c32 = c0.slice();
      native.gemmBf16(a, b, c16, d);
      ref.gemm(a, b, c32, d);
      const absProd = new Float32Array(m * n);
      ref.gemm(a.map(Math.abs), b.map(Math.abs), absProd, { ...d, alpha: 1, beta: 0 });
      const f32 = gemmTol(k);
      for (let i = 0; i < m * n; i++) {
        const bound = BF16_REL * Math.abs(alpha) * absProd[i] + f32.atol + f32.rtol * Math.abs(c32[i]);
        if (!(Math.abs(c16[i] - c32[i]) <= bound)) {
          expect.fail(`${m}x${n}x${k}: element ${i} is ${c16[i]}, fp32 ${c32[i]}, bound ${bound}`);
        }
      }
    }
  });

  it('rounds inputs to nearest-even bf16', () => {
    const c = new Float32Array(1);
    const one = new Float32Array([1]);
    const cases: [number, number][] = [
      [1 + 2 ** -8, 1], // tie between 1 and 1 + 2^-7: even mantissa wins
      [1 + 3 * 2 ** -8, 1 + 2 ** -6], // tie: rounds up to the even neighbour
      [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // above the tie
      [-(1 + 2 ** -9), -1],
    ];
    for (const [x, expected] of cases) {
      native.gemmBf16(new Float32Array([x]), one, c, gemmDims(1, 1, 1));
      expect(c[0], `round(${x})`).toBe(expected);
    }
  });

  it('runs batches with broadcast strides', () => {
    const d = gemmDims(5, 6, 7, { batch: 3, strideA: 0, strideB: 42, strideC: 30 });
    const a = rand32(35, 1);
    const b = rand32(3 * 42, 2);
    const c16 = new Float32Array(90);
    const c = new Float32Array(90);
    native.gemmBf16(a, b, c16, d);
    native.gemm(roundBf16(a), roundBf16(b), c, d);
    expectClose(c16, c, { rtol: 1e-5, atol: 1e-5 }, 'batched bf16');
  });

  it('equals sgemm on bf16-rounded inputs when emulated', () => {
    if (native.bf16Native()) return; // oneDNN's own kernel: covered by the bound above
    const d = gemmDims(33, 65, 129, { transB: true, alpha: 0.75, beta: 0.5 });
    const a = rand32(33 * 129, 8);
    const b = rand32(65 * 129, 9);
    const c0 = rand32(33 * 65, 10);
    const c16 = c0.slice();
    const c = c0.slice();
    native.gemmBf16(a, b, c16, d);
    native.gemm(roundBf16(a), roundBf16(b), c, d);
    expect(Array.from(c16)).toEqual(Array.from(c));
  });
});
