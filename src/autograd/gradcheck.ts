/**
 * Finite-difference gradient checks in float64. For a scalar function f of some f64 tensors, compares
 * the tape's gradient with central differences (f(x + eps v) - f(x - eps v)) / 2 eps along directions v:
 * every coordinate for small inputs, random unit directions for large ones (a whole model).
 */
import { Rng } from '../util/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import { backward } from './tape.js';

export interface GradcheckOptions {
  eps?: number;
  /** A check passes when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) (numpy's allclose). */
  rtol?: number;
  /** Absorbs the finite difference's roundoff, ~|f| * 1e-16 / eps, on components near zero. */
  atol?: number;
  /** Directions per input; coordinates are checked exhaustively when the input is this small or smaller. */
  directions?: number;
  seed?: number;
}

export interface GradcheckResult {
  /** max over checks of |analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|)): passes when <= 1 */
  worstRatio: number;
  checks: number;
  worst: string;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function directionsFor(x: Tensor, count: number, rng: Rng): Float64Array[] {
  if (x.size <= count) {
    return Array.from({ length: x.size }, (_, i) => {
      const v = new Float64Array(x.size);
      v[i] = 1;
      return v;
    });
  }
  return Array.from({ length: count }, () => {
    const v = Float64Array.from({ length: x.size }, () => rng.next() * 2 - 1);
    const norm = Math.sqrt(dot(v, v));
    return v.map((e) => e / norm);
  });
}

/** Evaluates f(inputs) with inputs[i] shifted by eps * v in place, then restores it. */
function shifted(f: () => Tensor, x: Tensor, v: Float64Array, eps: number): number {
  const data = x.data;
  for (let j = 0; j < v.length; j++) data[j] += eps * v[j];
  const value = f().data[0];
  for (let j = 0; j < v.length; j++) data[j] -= eps * v[j];
  return value;
}

export function gradcheck(f: () => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const { eps = 1e-6, rtol = 1e-6, atol = 1e-8, directions = 32, seed = 1 } = options;
  for (const x of inputs) {
    if (x.dtype !== 'f64') throw new TypeError(`gradcheck: inputs must be f64, got ${x}`);
    x.requiresGrad = true;
    x.grad = null;
  }
  const out = f();
  if (out.size !== 1) throw new RangeError(`gradcheck: f must return a scalar, got ${out}`);
  backward(out);
  const rng = new Rng(seed);
  const result: GradcheckResult = { worstRatio: 0, checks: 0, worst: '' };
  inputs.forEach((x, i) => {
    const grad = x.gradData ?? new Float64Array(x.size);
    for (const v of directionsFor(x, directions, rng)) {
      const numeric = (shifted(f, x, v, eps) - shifted(f, x, v, -eps)) / (2 * eps);
      const analytic = dot(grad, v);
      const ratio = Math.abs(analytic - numeric) / (atol + rtol * Math.max(Math.abs(analytic), Math.abs(numeric)));
      result.checks++;
      if (ratio > result.worstRatio) {
        result.worstRatio = ratio;
        result.worst = `input ${i} ${x}: analytic ${analytic}, numeric ${numeric}`;
      }
    }
  });
  return result;
}
