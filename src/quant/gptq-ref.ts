/**
 * Plain TypeScript reference of GPTQ (the oracle of kernels/src/gptq.cc), written line for line as
 * IST-DASLab/gptq's `fasterquant` in OWQ's variant (xvyaward/owq recon.py) with every operation in fp32
 * (Math.fround after each op). The three LAPACK calls (cholesky, cholesky_inverse, cholesky upper) are
 * textbook unblocked loops here, and the block update Err1 @ Hinv a sequential fp32 dot product: the
 * native side (LAPACK / BLAS) rounds those differently in the last ulps, which is the one expected source
 * of disagreement. Slow (O(C^3) in JS); for tests.
 */
import type { GptqOptions, GptqResult } from './gptq.js';
import { gptqGroups } from './gptq.js';
import { maxqOf, refCode, refFindParams } from './quantizer-ref.js';

const f = Math.fround;

/** Lower Cholesky factor L of the symmetric [n, n] matrix a (H = L L^T), fp32; throws if not positive definite. */
export function refCholeskyLower(a: Float32Array, n: number): Float32Array {
  const L = new Float32Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = a[j * n + j];
    for (let k = 0; k < j; k++) s = f(s - f(L[j * n + k] * L[j * n + k]));
    if (!(s > 0)) throw new Error(`refCholeskyLower: not positive definite at column ${j + 1} of ${n}`);
    const djj = f(Math.sqrt(s));
    L[j * n + j] = djj;
    for (let i = j + 1; i < n; i++) {
      let t = a[i * n + j];
      for (let k = 0; k < j; k++) t = f(t - f(L[i * n + k] * L[j * n + k]));
      L[i * n + j] = f(t / djj);
    }
  }
  return L;
}

/** torch.cholesky_inverse(L): (L L^T)^-1 = L^-T L^-1, full symmetric, fp32. */
export function refCholeskyInverse(L: Float32Array, n: number): Float32Array {
  const Li = new Float32Array(n * n); // L^-1, lower triangular, by forward substitution
  for (let j = 0; j < n; j++) {
    Li[j * n + j] = f(1 / L[j * n + j]);
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s = f(s + f(L[i * n + k] * Li[k * n + j]));
      Li[i * n + j] = f(-f(s / L[i * n + i]));
    }
  }
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s = f(s + f(Li[k * n + i] * Li[k * n + j]));
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/** torch.linalg.cholesky(a, upper=True): U with a = U^T U, fp32. */
export function refCholeskyUpper(a: Float32Array, n: number): Float32Array {
  const L = refCholeskyLower(a, n);
  const U = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) U[j * n + i] = L[i * n + j];
  return U;
}

/** Reference of gptq(): same contract (w overwritten, h destroyed), the reference's arithmetic. */
export function refGptq(w: Float32Array, h: Float32Array, rows: number, cols: number, opts: GptqOptions): GptqResult {
  const maxq = maxqOf(opts.bits);
  const nq = opts.nQuant;
  const G = opts.groupSize ?? 0;
  const B = opts.blockSize ?? 128;
  const nGroups = gptqGroups(nq, G);
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  const codes = new Uint8Array(rows * nq);
  const W = w;
  const H = h;
  const fixed = opts.fixed;
  /** W[:, c0:c0 + width] with the fixed elements as 0 (they count as 0 in the params), row stride `width`. */
  const paramSlice = (c0: number, width: number): Float32Array => {
    const s = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < width; j++) s[r * width + j] = fixed?.[r * cols + c0 + j] ? 0 : W[r * cols + c0 + j];
    return s;
  };
  if (G === 0) {
    const p = refFindParams(paramSlice(0, nq), rows, nq, nq, { bits: opts.bits, tuning: opts.tuning, grid: 100 });
    scale.set(p.scale);
    zero.set(p.zero);
  }
  // dead = diag(H) == 0; H[dead, dead] = 1; W[:, dead] = 0
  for (let j = 0; j < cols; j++) {
    if (H[j * cols + j] === 0) {
      H[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
    }
  }
  // damp = percdamp * mean(diag(H)): torch's mean is an fp32 sum / n
  let diagSum = 0;
  for (let j = 0; j < cols; j++) diagSum += H[j * cols + j];
  const damp = f(f(opts.percdamp ?? 0.01) * f(f(diagSum) / cols));
  for (let j = 0; j < cols; j++) H[j * cols + j] = f(H[j * cols + j] + damp);
  const Hinv = refCholeskyUpper(refCholeskyInverse(refCholeskyLower(H, cols), cols), cols);

  let loss = 0;
  for (let i1 = 0; i1 < nq; i1 += B) {
    const i2 = Math.min(i1 + B, nq);
    const count = i2 - i1;
    const W1 = new Float32Array(rows * count); // W[:, i1:i2].clone()
    const Err1 = new Float32Array(rows * count);
    for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) W1[r * count + i] = W[r * cols + i1 + i];
    for (let i = 0; i < count; i++) {
      const c = i1 + i;
      const d = Hinv[c * cols + c];
      if (G > 0 && c % G === 0) {
        const width = Math.min(c + G, nq) - c;
        const p = refFindParams(paramSlice(c, width), rows, width, width, {
          bits: opts.bits,
          tuning: opts.tuning,
          grid: 40,
        });
        for (let r = 0; r < rows; r++) {
          scale[r * nGroups + c / G] = p.scale[r];
          zero[r * nGroups + c / G] = p.zero[r];
        }
      }
      const g = G > 0 ? Math.floor(c / G) : 0;
      for (let r = 0; r < rows; r++) {
        const s = scale[r * nGroups + g];
        const z = zero[r * nGroups + g];
        const wv = W1[r * count + i];
        if (fixed?.[r * cols + c]) {
          codes[r * nq + c] = z; // error 0: nothing propagates, Q is 0 (the caller stores the value)
          Err1[r * count + i] = 0;
          W[r * cols + c] = 0;
          continue;
        }
        const code = refCode(wv, s, z, maxq);
        const q = f(s * f(code - z));
        codes[r * nq + c] = code;
        const dq = f(wv - q);
        loss += f(f(f(dq * dq) / f(d * d)) / 2);
        const err = f(dq / d);
        for (let j = i; j < count; j++) W1[r * count + j] = f(W1[r * count + j] - f(err * Hinv[c * cols + i1 + j]));
        Err1[r * count + i] = err;
        W[r * cols + c] = q; // Q[:, i1:i2] = Q1
      }
    }
    // W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    for (let r = 0; r < rows; r++) {
      for (let j = i2; j < cols; j++) {
        let s = 0;
        for (let k = 0; k < count; k++) s = f(s + f(Err1[r * count + k] * Hinv[(i1 + k) * cols + j]));
        W[r * cols + j] = f(W[r * cols + j] - s);
      }
    }
  }
  return { codes, scale, zero, nGroups, loss };
}
