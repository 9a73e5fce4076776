import { describe, expect, it } from 'vitest';
import type { BinaryOp, BroadcastDims, UnaryOp } from '../../src/native/types.js';
import {
  SIZES,
  broadcastLayout,
  broadcastStrides,
  denseStrides,
  expectClose,
  native,
  numel,
  rand32,
  ref,
} from './helpers.js';

/** add/sub/mul/div are single IEEE operations in both engines: results must agree exactly. */
const BINARY_TOL = { rtol: 0, atol: 0 };
/** affine: x * alpha + beta may be fused (FMA) in native code, one rounding apart. */
const AFFINE_TOL = { rtol: 2e-7, atol: 1e-7 };
/** sums: both accumulate in double; only the summation order differs. */
const SUM_TOL = { rtol: 1e-6, atol: 1e-6 };
/** activations: vectorised expf / erfc (kernels/src/fastmath.h, ~1-2 ulp) vs double then one rounding. */
const UNARY_TOL = { rtol: 4e-7, atol: 1e-7 };

const BINARY_OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div'];
const UNARY_OPS: UnaryOp[] = ['relu', 'gelu', 'silu', 'exp', 'neg'];

function checkBinary(
  op: BinaryOp,
  aShape: number[],
  bShape: number[],
  outShape: number[],
  d: BroadcastDims = broadcastLayout(aShape, bShape, outShape),
): void {
  const a = rand32(Math.max(1, numel(aShape)), 1);
  // divisors kept away from 0 so relative errors stay meaningful
  const b = rand32(Math.max(1, numel(bShape)), 2, op === 'div' ? 0.5 : -1, op === 'div' ? 2 : 1);
  const outN = new Float32Array(numel(outShape));
  const outR = new Float32Array(numel(outShape));
  native.binary(op, a, b, outN, d);
  ref.binary(op, a, b, outR, d);
  expectClose(outN, outR, BINARY_TOL, `${op} [${aShape}] [${bShape}]`);
}

describe('binary', () => {
  for (const op of BINARY_OPS) {
    it(`${op}: same shape, broadcasts, rank 8, scalars`, () => {
      for (const n of [...SIZES, 40000]) checkBinary(op, [n], [n], [n]);
      checkBinary(op, [127, 129], [129], [127, 129]);
      checkBinary(op, [129], [127, 129], [127, 129]);
      checkBinary(op, [3, 1, 5], [1, 4, 5], [3, 4, 5]);
      checkBinary(op, [7, 1], [1, 127], [7, 127]);
      checkBinary(op, [300, 1], [300, 129], [300, 129]);
      checkBinary(op, [2, 3, 1, 2, 3, 1, 2, 3], [1, 3, 2, 1, 3, 2, 1, 3], [2, 3, 2, 2, 3, 2, 2, 3]);
      checkBinary(op, [], [7], [7]);
      checkBinary(op, [], [], []);
      checkBinary(op, [0, 3], [3], [0, 3]);
    });
  }

  it('reads non-contiguous (transposed) inputs', () => {
    // a is a [9, 7] buffer read as its transpose [7, 9]
    checkBinary('mul', [9, 7], [7, 9], [7, 9], { shape: [7, 9], stridesA: [1, 7], stridesB: denseStrides([7, 9]) });
  });

  it('allows out to alias a', () => {
    const a = rand32(129, 3);
    const b = rand32(129, 4);
    const expected = new Float32Array(129);
    const d = broadcastLayout([129], [129], [129]);
    ref.binary('add', a, b, expected, d);
    native.binary('add', a, b, a, d);
    expectClose(a, expected, BINARY_TOL, 'in place');
  });
});

describe('accumulate', () => {
  it('adds x into acc as the reference does, into itself and a longer acc too', () => {
    for (const n of [...SIZES, 100001]) {
      const x = rand32(n, n);
      const accN = rand32(n + 2, n + 1);
      const accR = Float32Array.from(accN);
      native.accumulate(accN, x);
      ref.accumulate(accR, x);
      expectClose(accN, accR, BINARY_TOL, `accumulate ${n}`);
      const twice = Float32Array.from(x, (v) => v + v);
      native.accumulate(x, x);
      expectClose(x, twice, BINARY_TOL, `accumulate ${n} into itself`);
    }
  });

  it('refuses an acc shorter than x', () => {
    expect(() => native.accumulate(new Float32Array(2), new Float32Array(3))).toThrow(
      /accumulate: acc has 2 elements, needs at least 3/,
    );
  });
});

describe('affine', () => {
  it('matches the reference, in place too', () => {
    for (const n of [...SIZES, 100001]) {
      const x = rand32(n, n);
      const outR = new Float32Array(n);
      ref.affine(x, outR, 1.5, -0.25);
      native.affine(x, x, 1.5, -0.25);
      expectClose(x, outR, AFFINE_TOL, `affine ${n}`);
    }
  });
});

describe('sumTo', () => {
  const cases: [number[], number[]][] = [
    [[127, 129], [129]],
    [
      [127, 129],
      [127, 1],
    ],
    [
      [2, 3, 4],
      [1, 3, 1],
    ],
    [
      [2, 3, 4],
      [2, 1, 4],
    ],
    [[7, 3], []],
    [
      [3, 1, 5],
      [3, 1, 5],
    ],
    [[1], [1]],
    [[300, 129], [129]],
    [
      [5, 300, 7],
      [5, 1, 7],
    ],
    [[600, 1000], [1000]],
    [
      [1000, 600],
      [1000, 1],
    ],
    [
      [4, 5, 6, 7],
      [5, 1, 7],
    ],
  ];
  for (const [from, to] of cases) {
    it(`[${from}] -> [${to}] accumulates into out`, () => {
      const x = rand32(numel(from), 5);
      const s = broadcastStrides(to, from);
      const d: BroadcastDims = { shape: from, stridesA: s, stridesB: s };
      const outN = rand32(Math.max(1, numel(to)), 6);
      const outR = outN.slice();
      native.sumTo(x, outN, d);
      ref.sumTo(x, outR, d);
      expectClose(outN, outR, SUM_TOL, 'sumTo');
    });
  }
});

describe('sumInto', () => {
  const sumOf = (k: typeof native | typeof ref, x: Float32Array, scale = 1) => {
    const out = new Float64Array(1);
    k.sumInto(x, out, scale);
    return out[0];
  };
  it('sums in double', () => {
    for (const n of [0, ...SIZES, 1_000_003]) {
      const x = rand32(n, n, 0, 1);
      expect(sumOf(native, x)).toBeCloseTo(sumOf(ref, x), 6);
    }
    // 2^24 + 1 ones: a float accumulator would stop at 2^24
    expect(sumOf(native, new Float32Array(2 ** 24 + 1).fill(1))).toBe(2 ** 24 + 1);
    expect(sumOf(native, Float32Array.of(1, 2, 3), -0.5)).toBe(-3);
  });
});

describe('unary', () => {
  for (const op of UNARY_OPS) {
    it(`${op} forward and backward match the reference`, () => {
      for (const n of [...SIZES, 50001]) {
        const x = rand32(n, n, -6, 6);
        const dy = rand32(n, n + 1);
        const yN = new Float32Array(n);
        const yR = new Float32Array(n);
        native.unaryForward(op, x, yN);
        ref.unaryForward(op, x, yR);
        expectClose(yN, yR, UNARY_TOL, `${op} forward n=${n}`);
        const dxN = new Float32Array(n);
        const dxR = new Float32Array(n);
        native.unaryBackward(op, x, dy, dxN);
        ref.unaryBackward(op, x, dy, dxR);
        expectClose(dxN, dxR, UNARY_TOL, `${op} backward n=${n}`);
      }
    });
  }

  it('gelu is the exact erf form (torch default), not the tanh approximation', () => {
    const x = Float32Array.from([-3, -1, -0.5, 0, 0.5, 1, 3]);
    const y = new Float32Array(x.length);
    native.unaryForward('gelu', x, y);
    // x * Phi(x) in float64 (torch.nn.functional.gelu on float64 gives the same)
    const torch = [
      -0.004049694094890284, -0.15865525393145707, -0.15426876936299347, 0, 0.34573123063700656, 0.8413447460685429,
      2.99595030590511,
    ];
    expectClose(y, torch, { rtol: 2e-7, atol: 1e-8 }, 'gelu values');
  });

  it('rejects an unknown op name', () => {
    expect(() => native.unaryForward('tanh' as UnaryOp, new Float32Array(1), new Float32Array(1))).toThrow(
      /unknown op "tanh"/,
    );
  });
});
