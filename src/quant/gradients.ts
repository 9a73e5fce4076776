/**
 * Gradients of the calibration loss as a quantization statistic (GWQ-style outliers, OWQ's Fisher sensitivity;
 * docs/ARCHITECTURE.md section 4). The full-precision model (fp32, no dropout) runs forward and backward on each of
 * S calibration windows, batch 1: L_s = mean next-token cross-entropy over the window's T-1 predictions, and
 * g_s = dL_s/dW for every decoder linear weight W [N out, K in] (embeddings, norms and lm_head are not scored).
 * Per weight one fp32 statistic runs over s in window order (sequential fp32 sums, as the reference):
 *   sum       Σ_s g_s         (GWQ-style grad: |Σ g_s / S|)
 *   squares   Σ_s g_s²        (the diagonal Fisher F: GWQ-style fisher, OWQ --sensitivity fisher)
 *   weighted  Σ_s g_s · W     (GWQ-style taylor: |Σ g_s W / S|)
 *
 * Streaming: the tape hands each weight's gradient to a sink the moment its backward is done (src/autograd/tape.ts
 * LeafSink), and nothing else keeps it. On the last window each weight's statistic is reduced at once by the
 * caller's `reduce` (to an outlier mask, or K column scores) and dropped, before the next weight's gradient exists.
 * Peak memory beyond the model and one forward's tape: one linear's gradient and statistic for S = 1; for S > 1
 * also one fp32 accumulator per scored weight (the size of the fp32 decoder linears).
 */
import { backward, crossEntropy, IGNORE_INDEX } from '../autograd/index.js';
import { asDense } from '../models/linear.js';
import type { CausalLM } from '../models/model.js';
import { scoped } from '../tensor/device.js';
import type { Tensor } from '../tensor/tensor.js';

export type GradientStatistic = 'sum' | 'squares' | 'weighted';

/** What a method asks of the gradient pass. */
export interface GradientPass<R> {
  statistic: GradientStatistic;
  /** S: the first S calibration windows. */
  windows: number;
  /** Reduces one weight's final statistic [rows, cols] (its own buffer, free to modify) with its weight W. */
  reduce(name: string, statistic: Float32Array, weight: Float32Array, rows: number, cols: number): R;
}

/** Targets of a window: ids shifted left by one, the last position ignored (T-1 predictions). */
function nextTokenTargets(ids: Int32Array): Int32Array {
  const t = new Int32Array(ids.length).fill(IGNORE_INDEX);
  t.set(ids.subarray(1));
  return t;
}

/** acc (or a new statistic when null) += the window's term of `statistic` for gradient g of weight w, in fp32. */
function accumulate(
  statistic: GradientStatistic,
  acc: Float32Array | null,
  g: Float32Array,
  w: Float32Array,
): Float32Array {
  const out = acc ?? new Float32Array(g.length);
  const f = Math.fround;
  for (let i = 0; i < g.length; i++) {
    const term = statistic === 'sum' ? g[i] : statistic === 'squares' ? f(g[i] * g[i]) : f(g[i] * w[i]);
    out[i] = f(out[i] + term);
  }
  return out;
}

export interface GradientPassResult<R> {
  /** Each scored weight's reduction, by linear name. */
  reduced: Map<string, R>;
  /** L_s of each window. */
  losses: number[];
}

/**
 * Runs the pass over `names` (dense decoder linears of a host model) on the first `pass.windows` of `windows`;
 * `onWindow(s)` after each window's backward. The weights' requiresGrad is restored afterwards.
 */
export function gradientPass<R>(
  model: CausalLM,
  names: readonly string[],
  windows: readonly Int32Array[],
  pass: GradientPass<R>,
  onWindow?: (s: number) => void,
): GradientPassResult<R> {
  const S = pass.windows;
  if (!(Number.isInteger(S) && S >= 1 && S <= windows.length))
    throw new RangeError(`gradient pass: ${S} windows requested, ${windows.length} calibration windows available`);
  const weights = new Map<Tensor, string>();
  for (const name of names) weights.set(asDense(name, model.linears().get(name)).weight, name);
  const accumulators = new Map<Tensor, Float32Array>();
  const reduced = new Map<string, R>();
  const losses: number[] = [];
  const before = [...weights.keys()].map((w) => w.requiresGrad);
  for (const w of weights.keys()) w.requiresGrad = true;
  try {
    for (let s = 0; s < S; s++) {
      const ids = windows[s];
      scoped(() => {
        const loss = crossEntropy(model.forward(ids, { batch: 1 }), nextTokenTargets(ids));
        losses.push((loss.storage as Float32Array)[0]);
        backward(loss, undefined, (leaf, g) => {
          const name = weights.get(leaf);
          if (name === undefined) return; // not a scored weight
          const w = leaf.data as Float32Array;
          const acc = accumulate(pass.statistic, accumulators.get(leaf) ?? null, g as Float32Array, w);
          if (s < S - 1) accumulators.set(leaf, acc);
          else {
            accumulators.delete(leaf);
            reduced.set(name, pass.reduce(name, acc, w, leaf.shape[0], leaf.shape[1]));
          }
        });
      });
      onWindow?.(s);
    }
  } finally {
    [...weights.keys()].forEach((w, i) => (w.requiresGrad = before[i]));
  }
  const missing = names.find((n) => !reduced.has(n));
  if (missing !== undefined) throw new Error(`gradient pass: the loss does not depend on ${missing}`);
  return { reduced, losses };
}
