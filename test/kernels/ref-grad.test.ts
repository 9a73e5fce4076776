/**
 * The reference backward kernels are exact derivatives: for each one, with random inputs x, upstream dy
 * and direction v (all float64), <dL/dx, v> must match the central difference
 * (L(x + eps v) - L(x - eps v)) / 2 eps of L(x) = <forward(x), dy>.
 */
import { describe, expect, it } from 'vitest';
import { erf } from '../../src/native/ref.js';
import type { AttentionDims, BroadcastDims, GemmDims, NormDims, UnaryOp } from '../../src/native/types.js';
import { broadcastLayout, broadcastStrides, rand64, randInts, ref } from './helpers.js';

const EPS = 1e-6;
/** Central differences are O(eps^2) accurate; float64 rounding adds ~1e-16 / eps relative. */
const FD_REL_TOL = 1e-6;

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** Checks <grad, v> against the central difference of f along a random v. */
function expectDirectional(
  label: string,
  x: Float64Array,
  grad: ArrayLike<number>,
  f: (x: Float64Array) => number,
  seed = 99,
): void {
  const v = rand64(x.length, seed);
  const xp = x.map((xi, i) => xi + EPS * v[i]);
  const xm = x.map((xi, i) => xi - EPS * v[i]);
  const fd = (f(xp) - f(xm)) / (2 * EPS);
  const analytic = dot(grad, v);
  const scale = Math.max(Math.abs(fd), Math.abs(analytic), 1e-9);
  expect(
    Math.abs(analytic - fd) / scale,
    `${label}: analytic ${analytic} vs finite difference ${fd}`,
  ).toBeLessThanOrEqual(FD_REL_TOL);
}

describe('erf', () => {
  it('matches tabulated values to double precision', () => {
    const table: [number, number][] = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [-1, -0.8427007929497149],
    ];
    for (const [x, y] of table) expect(Math.abs(erf(x) - y), `erf(${x})`).toBeLessThanOrEqual(4e-16);
    expect(Math.abs(erf(3 - 1e-12) - erf(3 + 1e-12))).toBeLessThan(1e-14); // continuous where the method switches
    expect(erf(7)).toBe(1);
  });
});

describe('reference backward kernels vs finite differences (float64)', () => {
  for (const op of ['relu', 'gelu', 'silu', 'exp', 'neg'] as UnaryOp[]) {
    it(`unary ${op}`, () => {
      const n = 37;
      // keep relu inputs away from its kink
      const x = rand64(n, 1, -3, 3).map((v) => (op === 'relu' && Math.abs(v) < 0.01 ? 0.5 : v));
      const dy = rand64(n, 2);
      const dx = new Float64Array(n);
      ref.unaryBackward(op, x, dy, dx);
      expectDirectional(op, x, dx, (xx) => {
        const y = new Float64Array(n);
        ref.unaryForward(op, xx, y);
        return dot(y, dy);
      });
    });
  }

  it('rmsnorm: dx and dw', () => {
    const d: NormDims = { rows: 5, cols: 13, eps: 1e-5 };
    const x = rand64(65, 1, -2, 2);
    const w = rand64(13, 2, 0.5, 1.5);
    const dy = rand64(65, 3);
    const L = (xx: Float64Array, ww: Float64Array) => {
      const out = new Float64Array(65);
      ref.rmsnormForward(xx, ww, out, new Float64Array(5), d);
      return dot(out, dy);
    };
    const rstd = new Float64Array(5);
    ref.rmsnormForward(x, w, new Float64Array(65), rstd, d);
    const dx = new Float64Array(65);
    const dw = new Float64Array(13);
    ref.rmsnormBackward(x, w, rstd, dy, dx, dw, d);
    expectDirectional('dx', x, dx, (xx) => L(xx, w));
    expectDirectional('dw', w, dw, (ww) => L(x, ww));
  });

  it('layernorm: dx, dw and db', () => {
    const d: NormDims = { rows: 4, cols: 11, eps: 1e-5 };
    const x = rand64(44, 1, -1, 3);
    const w = rand64(11, 2, 0.5, 1.5);
    const b = rand64(11, 3);
    const dy = rand64(44, 4);
    const L = (xx: Float64Array, ww: Float64Array, bb: Float64Array) => {
      const out = new Float64Array(44);
      ref.layernormForward(xx, ww, bb, out, new Float64Array(4), new Float64Array(4), d);
      return dot(out, dy);
    };
    const mean = new Float64Array(4);
    const rstd = new Float64Array(4);
    ref.layernormForward(x, w, b, new Float64Array(44), mean, rstd, d);
    const [dx, dw, db] = [new Float64Array(44), new Float64Array(11), new Float64Array(11)];
    ref.layernormBackward(x, w, mean, rstd, dy, dx, dw, db, d);
    expectDirectional('dx', x, dx, (xx) => L(xx, w, b));
    expectDirectional('dw', w, dw, (ww) => L(x, ww, b));
    expectDirectional('db', b, db, (bb) => L(x, w, bb));
  });

  it('softmax', () => {
    const d = { rows: 3, cols: 9 };
    const x = rand64(27, 1, -3, 3);
    const dy = rand64(27, 2);
    const y = new Float64Array(27);
    ref.softmaxForward(x, y, d);
    const dx = new Float64Array(27);
    ref.softmaxBackward(y, dy, dx, d);
    expectDirectional('dx', x, dx, (xx) => {
      const yy = new Float64Array(27);
      ref.softmaxForward(xx, yy, d);
      return dot(yy, dy);
    });
  });

  it('rope: the inverse rotation is the backward', () => {
    const d = { batch: 2, seq: 3, heads: 2, headDim: 6 };
    const n = 2 * 3 * 2 * 6;
    const x = rand64(n, 1);
    const angles = rand64(3 * 3, 2, -3, 3);
    const cos = angles.map(Math.cos);
    const sin = angles.map(Math.sin);
    const dy = rand64(n, 3);
    const dx = new Float64Array(n);
    ref.rope(dy, dx, cos, sin, d, true);
    expectDirectional('dx', x, dx, (xx) => {
      const y = new Float64Array(n);
      ref.rope(xx, y, cos, sin, d, false);
      return dot(y, dy);
    });
  });

  const attentionCases: AttentionDims[] = [
    { batch: 2, tq: 3, tk: 5, heads: 4, kvHeads: 2, headDim: 3, scale: 0.7 },
    { batch: 1, tq: 4, tk: 4, heads: 2, kvHeads: 2, headDim: 5, scale: 0.4 },
    { batch: 1, tq: 2, tk: 6, heads: 3, kvHeads: 1, headDim: 2, scale: 1.1 },
  ];
  for (const d of attentionCases) {
    it(`attention: dq, dk, dv, ${JSON.stringify(d)}`, () => {
      const nq = d.batch * d.tq * d.heads * d.headDim;
      const nk = d.batch * d.tk * d.kvHeads * d.headDim;
      const [q, k, v, dout] = [rand64(nq, 1), rand64(nk, 2), rand64(nk, 3), rand64(nq, 4)];
      const L = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => {
        const out = new Float64Array(nq);
        ref.attentionForward(qq, kk, vv, out, null, d);
        return dot(out, dout);
      };
      const probs = new Float64Array(d.batch * d.heads * d.tq * d.tk);
      ref.attentionForward(q, k, v, new Float64Array(nq), probs, d);
      const [dq, dk, dv] = [new Float64Array(nq), new Float64Array(nk), new Float64Array(nk)];
      ref.attentionBackward(q, k, v, probs, dout, dq, dk, dv, d);
      expectDirectional('dq', q, dq, (x) => L(x, k, v));
      expectDirectional('dk', k, dk, (x) => L(q, x, v));
      expectDirectional('dv', v, dv, (x) => L(q, k, x));
    });
  }

  it('cross-entropy with ignored rows and a row scale', () => {
    const d = { rows: 6, vocab: 7, ignoreIndex: -100 };
    const logits = rand64(42, 1, -4, 4);
    const targets = randInts(6, 2, 7);
    targets[2] = -100;
    const scale = 1 / 5;
    const L = (x: Float64Array) => {
      const losses = new Float64Array(6);
      ref.crossEntropyForward(x, targets, losses, new Float64Array(6), d);
      return scale * losses.reduce((a, b) => a + b, 0);
    };
    const lse = new Float64Array(6);
    ref.crossEntropyForward(logits, targets, new Float64Array(6), lse, d);
    const dlogits = new Float64Array(42);
    ref.crossEntropyBackward(logits, targets, lse, scale, dlogits, d);
    expectDirectional('dlogits', logits, dlogits, L);
  });

  it('embedding: scatter-add with repeated ids', () => {
    const d = { rows: 9, dim: 4, vocab: 3 };
    const table = rand64(12, 1);
    const ids = randInts(9, 2, 3);
    const dy = rand64(36, 3);
    const dTable = new Float64Array(12);
    ref.embeddingBackward(dy, ids, dTable, d);
    expectDirectional('dTable', table, dTable, (t) => {
      const out = new Float64Array(36);
      ref.embeddingForward(t, ids, out, d);
      return dot(out, dy);
    });
  });

  it('dropout is its own backward', () => {
    const x = rand64(20, 1);
    const draw = { state: 2, threshold: 2 ** 31 };
    const dy = rand64(20, 3);
    const dx = new Float64Array(20);
    ref.dropout(dy, draw, 1.25, dx);
    expectDirectional('dx', x, dx, (xx) => {
      const y = new Float64Array(20);
      ref.dropout(xx, draw, 1.25, y);
      return dot(y, dy);
    });
  });

  it('sumTo is the backward of broadcasting', () => {
    // L(b) = <a * broadcast(b), dy> with b [1, 3, 1, 5] broadcast to [2, 3, 4, 5]: dL/db = sumTo(a * dy)
    const outShape = [2, 3, 4, 5];
    const bShape = [3, 1, 5];
    const n = 120;
    const a = rand64(n, 1);
    const b = rand64(15, 2);
    const dy = rand64(n, 3);
    const layout = broadcastLayout(outShape, bShape, outShape);
    const ady = new Float64Array(n);
    ref.binary('mul', a, dy, ady, broadcastLayout(outShape, outShape, outShape));
    const db = new Float64Array(15);
    const s = broadcastStrides(bShape, outShape);
    const reduce: BroadcastDims = { shape: outShape, stridesA: s, stridesB: s };
    ref.sumTo(ady, db, reduce);
    expectDirectional('db', b, db, (bb) => {
      const y = new Float64Array(n);
      ref.binary('mul', a, bb, y, layout);
      return dot(y, dy);
    });
  });

  for (const [transA, transB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    it(`gemm transposes are consistent (transA=${transA}, transB=${transB})`, () => {
      // Y = op(A) op(B), L = <Y, dY>: d op(A) = dY op(B)^T, d op(B) = op(A)^T dY
      const [m, n, k] = [4, 5, 3];
      const a = rand64(m * k, 1);
      const b = rand64(k * n, 2);
      const dY = rand64(m * n, 3);
      const base: GemmDims = {
        batch: 1,
        m,
        n,
        k,
        transA,
        transB,
        alpha: 1,
        beta: 0,
        strideA: 0,
        strideB: 0,
        strideC: 0,
      };
      const L = (aa: Float64Array, bb: Float64Array) => {
        const y = new Float64Array(m * n);
        ref.gemm(aa, bb, y, base);
        return dot(y, dY);
      };
      // dA in A's storage: [M,K] = dY B^T (or [K,M] = B dY^T when transA)
      const dA = new Float64Array(m * k);
      if (transA) ref.gemm(b, dY, dA, { ...base, m: k, n: m, k: n, transA: transB, transB: true });
      else ref.gemm(dY, b, dA, { ...base, m, n: k, k: n, transA: false, transB: !transB });
      // dB in B's storage: [K,N] = A^T dY (or [N,K] = dY^T A when transB)
      const dB = new Float64Array(k * n);
      if (transB) ref.gemm(dY, a, dB, { ...base, m: n, n: k, k: m, transA: true, transB: transA });
      else ref.gemm(a, dY, dB, { ...base, m: k, n, k: m, transA: !transA, transB: false });
      expectDirectional('dA', a, dA, (aa) => L(aa, b));
      expectDirectional('dB', b, dB, (bb) => L(a, bb));
    });
  }
});
