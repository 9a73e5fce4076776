/**
 * The native optimizer kernels (kernels/src/adamw.cc) against the reference (src/native/ref.ts): the fused
 * AdamW update bit for bit (same float operations in the same order) on odd sizes, with and without weight
 * decay and clipping, over several steps, at one and two threads, one tensor per call and many (the trainer's
 * adamwMany); the clipping norm's sum of squares against a compensated sum written here, and bit-identical at
 * one and two threads.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { AdamWStepParams } from '../../src/native/types.js';
import { native, rand32, ref } from './helpers.js';

const SIZES = [1, 7, 1000003];
const STEPS = 3;
const threadsBefore = native.threads();
afterAll(() => native.setThreads(threadsBefore));

function stepParams(t: number, weightDecay: number, gradScale: number): AdamWStepParams {
  const beta1 = 0.9;
  const beta2 = 0.999;
  return { lr: 1e-3, beta1, beta2, eps: 1e-8, weightDecay, c1: 1 - beta1 ** t, c2: 1 - beta2 ** t, gradScale };
}

interface State {
  theta: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** STEPS updates of a seeded parameter with fresh seeded gradients, by `k`. */
function run(k: typeof native | typeof ref, n: number, weightDecay: number, gradScale: number): State {
  const s = { theta: rand32(n, 11), m: new Float32Array(n), v: new Float32Array(n) };
  for (let t = 1; t <= STEPS; t++)
    k.adamw(s.theta, rand32(n, 100 + t, -3, 3), s.m, s.v, stepParams(t, weightDecay, gradScale));
  return s;
}

/** Index of the first element where the two arrays' bits differ (-1: identical, NaN patterns included). */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function expectSameBits(a: State, b: State, label: string): void {
  for (const key of ['theta', 'm', 'v'] as const)
    expect(firstBitDifference(a[key], b[key]), `${label} ${key}`).toBe(-1);
}

/** Σ x² by Neumaier's compensated summation (the squares of fp32 values are exact doubles). */
function compensatedSumSquares(x: Float32Array): number {
  let s = 0;
  let c = 0;
  for (const xi of x) {
    const q = xi * xi;
    const t = s + q;
    c += Math.abs(s) >= q ? s - t + q : q - t + s;
    s = t;
  }
  return s + c;
}

describe('native adamw', () => {
  for (const n of SIZES)
    for (const weightDecay of [0, 0.1])
      for (const gradScale of [1, 0.3721])
        it(`n=${n} weightDecay=${weightDecay} gradScale=${gradScale}: the reference's bits, at 1 and 2 threads`, () => {
          const want = run(ref, n, weightDecay, gradScale);
          native.setThreads(1);
          expectSameBits(run(native, n, weightDecay, gradScale), want, '1 thread');
          native.setThreads(2);
          expectSameBits(run(native, n, weightDecay, gradScale), want, '2 threads');
        });

  it('names the short state buffer', () => {
    expect(() =>
      native.adamw(
        new Float32Array(8),
        new Float32Array(8),
        new Float32Array(7),
        new Float32Array(8),
        stepParams(1, 0, 1),
      ),
    ).toThrow(/adamw: m has 7 elements, needs at least 8/);
  });
});

describe('native adamwMany', () => {
  const sizes = [1, 7, 0, 1000003, 768];
  /** STEPS multi-tensor updates of seeded parameters, each checked against the reference's single-tensor adamw. */
  function runMany(weightDecay: number, gradScale: number): State[] {
    const states = sizes.map((n, i) => ({ theta: rand32(n, 11 + i), m: new Float32Array(n), v: new Float32Array(n) }));
    for (let t = 1; t <= STEPS; t++) {
      const gs = sizes.map((n, i) => rand32(n, 100 * t + i, -3, 3));
      const pick = (k: keyof State) => states.map((s) => s[k]);
      native.adamwMany(pick('theta'), gs, pick('m'), pick('v'), stepParams(t, weightDecay, gradScale));
    }
    return states;
  }
  function runEach(weightDecay: number, gradScale: number): State[] {
    const states = sizes.map((n, i) => ({ theta: rand32(n, 11 + i), m: new Float32Array(n), v: new Float32Array(n) }));
    for (let t = 1; t <= STEPS; t++)
      states.forEach((s, i) =>
        ref.adamw(s.theta, rand32(sizes[i], 100 * t + i, -3, 3), s.m, s.v, stepParams(t, weightDecay, gradScale)),
      );
    return states;
  }

  it(`sizes ${sizes}: the reference's bits tensor by tensor, at 1 and 2 threads`, () => {
    const want = runEach(0.1, 0.3721);
    for (const threads of [1, 2]) {
      native.setThreads(threads);
      runMany(0.1, 0.3721).forEach((s, i) => expectSameBits(s, want[i], `${threads} threads, tensor ${i}`));
    }
  });

  it('names a list of the wrong length and a short entry, as the reference does', () => {
    const f = (n: number) => new Float32Array(n);
    const p = stepParams(1, 0, 1);
    for (const k of [native, ref]) {
      expect(() => k.adamwMany([f(3), f(7)], [f(3)], [f(3), f(7)], [f(3), f(7)], p)).toThrow(
        /adamwMany: gs has 1 entries, expected 2/,
      );
    }
    expect(() => native.adamwMany([f(3), f(7)], [f(3), f(7)], [f(3), f(6)], [f(3), f(7)], p)).toThrow(
      /adamwMany: ms\[1\] has 6 elements, needs at least 7/,
    );
  });
});

describe('native sumSquaresInto', () => {
  for (const n of SIZES)
    it(`n=${n}: the compensated sum to 1e-13, the same bits at 1 and 2 threads, the reference's fp32 to 1 ulp`, () => {
      const x = rand32(n, 7, -2, 2);
      const sums = [1, 2].map((threads) => {
        native.setThreads(threads);
        const out = Float32Array.of(0.5);
        native.sumSquaresInto(x, out);
        return out;
      });
      expect(firstBitDifference(sums[0], sums[1])).toBe(-1);
      const exact = compensatedSumSquares(x);
      native.setThreads(2);
      const out = new Float32Array(1);
      native.sumSquaresInto(x, out);
      expect(Math.abs(out[0] - Math.fround(exact))).toBeLessThanOrEqual(Math.abs(exact) * 2 ** -23);
      const want = Float32Array.of(0.5);
      ref.sumSquaresInto(x, want);
      expect(Math.abs(sums[0][0] - want[0])).toBeLessThanOrEqual(want[0] * 2 ** -23);
    });
});
