/**
 * Every op's backward on the tape against central finite differences in float64 (reference kernels).
 * Each op is composed with a fixed random projection so the scalar depends on every output element.
 * Tolerance: |analytic - numeric| <= 1e-8 + 1e-6 * |gradient| (gradcheck defaults).
 */
import { describe, expect, it } from 'vitest';
import * as ag from '../../src/autograd/index.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';

const rng = new Rng(42);

function randn(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Float64Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale),
    shape,
  );
}

/** sum(y * w) for a fixed random w: a scalar that sees every element of y. */
function project(y: Tensor): Tensor {
  const w = randnFixed(y.size);
  return ag.sum(ag.mul(y, new Tensor(w, y.shape)));
}

const fixed = new Map<number, Float64Array>();
function randnFixed(n: number): Float64Array {
  if (!fixed.has(n))
    fixed.set(
      n,
      Float64Array.from({ length: n }, () => rng.next() * 2 - 1),
    );
  return fixed.get(n)!;
}

function expectGrad(f: () => Tensor, inputs: Tensor[]): void {
  const r = gradcheck(f, inputs);
  expect(r.checks).toBeGreaterThan(0);
  expect(r.worstRatio, r.worst).toBeLessThanOrEqual(1);
}

describe('gradient checks (float64, finite differences)', () => {
  it('linear with bias, linear without bias', () => {
    const x = randn([2, 3, 5]);
    const w = randn([4, 5]);
    const b = randn([4]);
    expectGrad(() => project(ag.linear(x, w, b)), [x, w, b]);
    expectGrad(() => project(ag.linear(x, w)), [x, w]);
  });

  it('matmul batched, broadcast rhs', () => {
    const a = randn([2, 3, 4]);
    const b = randn([2, 4, 5]);
    const c = randn([4, 5]);
    expectGrad(() => project(ag.matmul(a, b)), [a, b]);
    expectGrad(() => project(ag.matmul(a, c)), [a, c]);
  });

  it('add, sub, mul, div with broadcasting', () => {
    const a = randn([2, 3, 4]);
    const b = randn([3, 1]);
    const c = new Tensor(
      Float64Array.from({ length: 4 }, () => 1 + rng.next()),
      [4],
    );
    for (const op of [ag.add, ag.sub, ag.mul]) expectGrad(() => project(op(a, b)), [a, b]);
    expectGrad(() => project(ag.div(a, c)), [a, c]);
    expectGrad(() => project(ag.div(c, a)), [a, c]);
  });

  it('affine, sum, mean, reshape', () => {
    const x = randn([3, 4]);
    expectGrad(() => project(ag.affine(x, 0.7, 0.2)), [x]);
    expectGrad(() => ag.sum(ag.mul(x, x)), [x]);
    expectGrad(() => ag.mean(ag.mul(x, x)), [x]);
    expectGrad(() => project(ag.reshape(ag.mul(x, x), [2, -1])), [x]);
  });

  it('relu, gelu, silu, exp', () => {
    // keep relu inputs away from the kink, where finite differences are undefined
    const x = new Tensor(
      Float64Array.from({ length: 24 }, () => (rng.next() < 0.5 ? -1 : 1) * (0.1 + rng.next())),
      [4, 6],
    );
    for (const op of [ag.relu, ag.gelu, ag.silu, ag.exp]) expectGrad(() => project(op(x)), [x]);
  });

  it('rmsnorm and layernorm', () => {
    const x = randn([3, 7]);
    const w = randn([7]);
    const b = randn([7]);
    expectGrad(() => project(ag.rmsnorm(x, w, 1e-6)), [x, w]);
    expectGrad(() => project(ag.layernorm(x, w, b, 1e-5)), [x, w, b]);
  });

  it('softmax', () => {
    const x = randn([3, 5], 2);
    expectGrad(() => project(ag.softmax(x)), [x]);
  });

  it('rope (rotate-half)', () => {
    const x = randn([2, 3, 2, 8]);
    const table = ag.ropeTable(5, 3, 8, 10000, 'f64');
    expectGrad(() => project(ag.rope(x, table)), [x]);
  });

  it('causal attention: MHA, GQA, and a KV-cache offset', () => {
    for (const [tq, tk, h, hkv] of [
      [4, 4, 2, 2],
      [4, 4, 4, 2],
      [2, 5, 4, 1],
    ]) {
      const q = randn([2, tq, h, 4]);
      const k = randn([2, tk, hkv, 4]);
      const v = randn([2, tk, hkv, 4]);
      expectGrad(() => project(ag.attention(q, k, v, 0.5)), [q, k, v]);
    }
  });

  it('cross-entropy with ignored rows', () => {
    const logits = randn([5, 7], 2);
    const targets = Int32Array.from([3, -100, 0, 6, -100]);
    expectGrad(() => ag.crossEntropy(logits, targets), [logits]);
  });

  it('embedding (scatter-add backward with repeated ids)', () => {
    const table = randn([6, 4]);
    const ids = Int32Array.from([1, 5, 1, 0]);
    expectGrad(() => project(ag.embedding(table, ids, [2, 2])), [table]);
  });

  it('dropout (fixed mask per seed)', () => {
    const x = randn([4, 5]);
    expectGrad(() => {
      const r = new Rng(7);
      return project(ag.dropout(x, 0.3, r));
    }, [x]);
  });
});
