/**
 * AWQ's clip search (llm-awq auto_clip.py): per output row and quantization group of a linear W [rows, cols],
 * with X the linear's recorded (scaled) inputs subsampled to every (N // 512)-th of its N tokens,
 *   m0 = max |w| over the group;  for i = 0..steps-1 (steps = grid * maxShrink = 10): m = m0 · (1 - i / grid),
 *   err(m) = mean over the sampled tokens of ((X · Q(clamp(w, -m, m)))_group - (X · w)_group)²,
 * Q being AWQ's quantizer (./awq-quantizer.ts); the first strict minimum wins, and W is clamped to ±m per group.
 * The partial outputs and errors are summed in float64 (the reference sums in fp32, in its own order: where two
 * steps' errors lie within a few fp32 ulps, the pick can differ).
 */
import type { Tensor } from '../tensor/tensor.js';
import { awqGroupParams } from './awq-quantizer.js';
import { refQuantize } from './quantizer-ref.js';

const f = Math.fround;

export interface ClipSettings {
  bits: number;
  /** 0: the whole row is one group. */
  groupSize: number;
  /** llm-awq: n_grid 20, max_shrink 0.5, n_sample_token 512. */
  grid: number;
  maxShrink: number;
  sampleTokens: number;
}

export const AWQ_CLIP: Omit<ClipSettings, 'bits' | 'groupSize'> = { grid: 20, maxShrink: 0.5, sampleTokens: 512 };

/** The chosen clip of every (row, group): max_val [rows, nGroups] and its shrink step i. */
export interface ClipSearch {
  linear: string;
  /** Columns per group (the last may be shorter). */
  groupSize: number;
  nGroups: number;
  maxVal: Float32Array;
  shrink: Uint8Array;
}

/**
 * Tokens 0, step, 2·step, ... (step = max(1, N // n)) of the recorded inputs, in recording order, as float64
 * [tokens, cols]. (llm-awq slices x[0::N // n], which fails when N < n; here every token is then used.)
 */
export function sampleTokens(inputs: readonly Tensor[], cols: number, n: number): Float64Array {
  const total = inputs.reduce((t, x) => t + x.size / cols, 0);
  const step = Math.max(1, Math.floor(total / n));
  const out = new Float64Array(Math.ceil(total / step) * cols);
  let base = 0; // global index of the first token of the current input
  let k = 0;
  for (const x of inputs) {
    const d = x.data as Float32Array;
    const tokens = d.length / cols;
    for (let t = (step - (base % step)) % step; t < tokens; t += step, k++)
      out.set(d.subarray(t * cols, (t + 1) * cols), k * cols);
    base += tokens;
  }
  return out;
}

/** x[:, c0:c0 + width] as a contiguous [tokens, width] copy (read once per candidate of every row). */
function groupColumns(x: Float64Array, cols: number, c0: number, width: number): Float64Array {
  const tokens = x.length / cols;
  const out = new Float64Array(tokens * width);
  for (let t = 0; t < tokens; t++) out.set(x.subarray(t * cols + c0, t * cols + c0 + width), t * width);
  return out;
}

/**
 * err[i] = mean over tokens t of (x_t · d_i)² for the candidates' differences d_i = Q(clamp(w, ±m_i)) - w, d [steps,
 * width]: the squared difference of the group's partial outputs, (x · q) - (x · w), summed in float64.
 */
function candidateErrors(xg: Float64Array, width: number, d: Float64Array, steps: number, err: Float64Array): void {
  err.fill(0);
  const tokens = xg.length / width;
  for (let t = 0; t < tokens; t++) {
    const base = t * width;
    for (let i = 0; i < steps; i++) {
      let acc = 0;
      for (let c = 0; c < width; c++) acc += xg[base + c] * d[i * width + c];
      err[i] += acc * acc;
    }
  }
  for (let i = 0; i < steps; i++) err[i] /= tokens;
}

/** The clip search of one linear W [rows, cols] over sampled inputs x [tokens, cols] (this file's header). */
export function searchClip(
  linear: string,
  w: Float32Array,
  rows: number,
  cols: number,
  x: Float64Array,
  o: ClipSettings,
): ClipSearch {
  const g = o.groupSize === 0 ? cols : o.groupSize;
  const nGroups = Math.ceil(cols / g);
  const maxq = 2 ** o.bits - 1;
  const steps = Math.trunc(o.maxShrink * o.grid);
  const factors = Array.from({ length: steps }, (_, i) => f(1 - i / o.grid)); // torch casts the scalar to fp32
  const maxVal = new Float32Array(rows * nGroups);
  const shrink = new Uint8Array(rows * nGroups);
  const [q, d, err, m] = [
    new Float32Array(g),
    new Float64Array(steps * g),
    new Float64Array(steps),
    new Float32Array(steps),
  ];
  for (let grp = 0; grp < nGroups; grp++) {
    const c0 = grp * g;
    const width = Math.min(g, cols - c0);
    const xg = groupColumns(x, cols, c0, width);
    for (let r = 0; r < rows; r++) {
      const seg = w.subarray(r * cols + c0, r * cols + c0 + width);
      let m0 = 0;
      for (const v of seg) m0 = Math.max(m0, Math.abs(v));
      for (let i = 0; i < steps; i++) {
        m[i] = m0 * factors[i];
        for (let c = 0; c < width; c++) q[c] = Math.min(Math.max(seg[c], -m[i]), m[i]);
        const [s, z] = awqGroupParams(q, 0, width, maxq);
        for (let c = 0; c < width; c++) d[i * width + c] = refQuantize(q[c], s, z, maxq) - seg[c];
      }
      candidateErrors(xg, width, d, steps, err);
      let best = 1e9;
      let choice = 0;
      for (let i = 0; i < steps; i++) {
        if (err[i] < best) {
          best = err[i];
          choice = i;
        }
      }
      maxVal[r * nGroups + grp] = steps > 0 ? m[choice] : m0;
      shrink[r * nGroups + grp] = choice;
    }
  }
  return { linear, groupSize: g, nGroups, maxVal, shrink };
}

/** W = clamp(W, -max_val, max_val) per (row, group), in place. */
export function applyClip(w: Float32Array, rows: number, cols: number, clip: ClipSearch): void {
  const g = clip.groupSize;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const m = clip.maxVal[r * clip.nGroups + Math.floor(c / g)];
      const i = r * cols + c;
      w[i] = Math.min(Math.max(w[i], -m), m);
    }
  }
}
