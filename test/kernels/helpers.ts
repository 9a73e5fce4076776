/** Shared helpers of the kernel tests: seeded data, broadcast layouts, and a tolerance check. */
import { expect } from 'vitest';
import { loadNative } from '../../src/native/addon.js';
import { referenceKernels } from '../../src/native/ref.js';
import { broadcastStrides } from '../../src/autograd/ops/broadcast.js';
export { broadcastStrides, denseStrides } from '../../src/autograd/ops/broadcast.js';
import type { BroadcastDims } from '../../src/native/types.js';

export const native = loadNative();
export const ref = referenceKernels;

/** Odd sizes that hit vector tails, single elements and just-over-a-block shapes. */
export const SIZES = [1, 3, 7, 127, 129] as const;

/** mulberry32: small, deterministic, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi). */
export function rand32(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

export function rand64(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

export function randInts(n: number, seed: number, hi: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * hi));
}

export interface Tol {
  rtol: number;
  atol: number;
}

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise, reporting the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, label = ''): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    const bad = Number.isNaN(excess) ? Infinity : excess;
    if (bad > worstExcess) {
      worst = i;
      worstExcess = bad;
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${tol.rtol}, atol ${tol.atol})`,
    );
  }
}

export function broadcastLayout(a: readonly number[], b: readonly number[], out: readonly number[]): BroadcastDims {
  return { shape: [...out], stridesA: broadcastStrides(a, out), stridesB: broadcastStrides(b, out) };
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((x, y) => x * y, 1);
}
