/**
 * AWQ's activation-aware scale search and its fold (arXiv 2306.00978, section 3.2; llm-awq auto_scale.py), for one
 * decoder block, on the linears' recorded full-precision inputs. For each scaling group of the family spec
 * (prev op -> linears sharing its output, compared at the output of `inspect`):
 *   x̄ = mean over tokens of |x| per input channel;
 *   for α = i / grid, i = 0..grid-1:  s = max(x̄^α, 1e-4),  s /= sqrt(max(s) * min(s)),
 *     every linear W of the group becomes Q(W · diag(s)) / s (AWQ's quantizer at the real bits and group size),
 *     loss(α) = mean squared difference of the inspected output from the full-precision one;
 *   the first strict minimum wins.
 * Every group is searched on the unscaled block; the scales are folded afterwards, in list order: the prev op's
 * output is divided by s (a norm's weight and bias, or the last rows of a previous linear and its bias), the group's
 * input columns multiplied by s, and the recorded inputs of the group divided by s in place (the clip search reads
 * them; they are not recomputed). fp32 after every elementwise operation, as the reference runs it.
 */
import { asDense, DenseLinear } from '../models/linear.js';
import type { CausalLM } from '../models/model.js';
import { familyOf } from '../models/families/registry.js';
import type { ScalingGroup } from '../models/families/spec.js';
import { scoped } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { awqQuantize } from './awq-quantizer.js';
import type { RecordedBatch } from './linear-inputs.js';

const f = Math.fround;
/** The clamp's bound, cast to fp32 as torch casts a Python scalar. */
const MIN_SCALE = f(1e-4);

export interface ScaleSettings {
  bits: number;
  groupSize: number;
  /** Candidate ratios α = i / grid, i = 0..grid-1 (llm-awq: 20). */
  grid: number;
}

/** One group's search: the chosen α, the loss of every candidate, and the scales s of the chosen α. */
export interface ScaleSearch {
  /** The prev op and the group's linears, canonical names. */
  prev: string;
  linears: string[];
  alpha: number;
  /** The chosen α's loss, and every candidate's in order. */
  loss: number;
  losses: number[];
  scales: Float32Array;
}

/** The family's scaling groups that apply to this model (v_proj -> o_proj only when the two weights have one shape). */
export function scalingGroups(model: CausalLM, prefix: string): ScalingGroup[] {
  const linears = model.linears();
  const shapeOf = (short: string) => {
    const l = linears.get(`${prefix}.${short}`)!;
    return `${l.outFeatures}x${l.inFeatures}`;
  };
  return familyOf(model.config).quant.scaling.filter(
    (g) => !g.requiresSameShape || g.linears.every((l) => shapeOf(l) === shapeOf(g.prev)),
  );
}

const dense = (model: CausalLM, name: string): DenseLinear => asDense(name, model.linears().get(name));

/** x̄: mean |x| per channel over every recorded token of `inputs` ([.., C] each). */
export function meanAbs(inputs: readonly Tensor[], channels: number): Float32Array {
  const sum = new Float64Array(channels);
  let tokens = 0;
  for (const x of inputs) {
    const d = x.data as Float32Array;
    for (let i = 0; i < d.length; i += channels) for (let c = 0; c < channels; c++) sum[c] += Math.abs(d[i + c]);
    tokens += d.length / channels;
  }
  return Float32Array.from(sum, (v) => v / tokens);
}

/** s for ratio α: max(x̄^α, 1e-4) / sqrt(max(s) * min(s)). */
export function candidateScales(xMean: Float32Array, alpha: number): Float32Array {
  const a = f(alpha);
  const s = Float32Array.from(xMean, (x) => Math.max(f(x ** a), MIN_SCALE));
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of s) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const norm = f(Math.sqrt(f(hi * lo)));
  for (let c = 0; c < s.length; c++) s[c] = f(s[c] / norm);
  return s;
}

/** Q(W · diag(s)) / s for W [rows, cols]. */
export function scaledQuantized(w: Float32Array, rows: number, cols: number, s: Float32Array, o: ScaleSettings) {
  const ws = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) ws[r * cols + c] = w[r * cols + c] * s[c];
  const q = awqQuantize(ws, rows, cols, { bits: o.bits, groupSize: o.groupSize }).dequantized;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) q[r * cols + c] = q[r * cols + c] / s[c];
  return q;
}

/** What the search compares: the output of the group's inspected part for one batch, given the group's input x. */
function inspected(model: CausalLM, block: number, prefix: string, group: ScalingGroup) {
  const { inspect } = group;
  return (x: Tensor, batch: RecordedBatch): Float32Array =>
    scoped(() =>
      typeof inspect === 'string'
        ? model.blockPart(block, inspect, x, batch.ctx)
        : model.linears().get(`${prefix}.${inspect.linear}`)!.forward(x),
    ).data as Float32Array;
}

function squaredDifference(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = f(a[i] - b[i]);
    sum += d * d;
  }
  return sum;
}

/** Searches one group on the unscaled block. */
function searchGroup(
  model: CausalLM,
  block: number,
  group: ScalingGroup,
  batches: readonly RecordedBatch[],
  o: ScaleSettings,
): ScaleSearch {
  const prefix = model.blockPrefix(block);
  const names = group.linears.map((l) => `${prefix}.${l}`);
  const inputOf = (b: RecordedBatch) => b.inputs.get(names[0])!;
  const run = inspected(model, block, prefix, group);
  const reference = batches.map((b) => run(inputOf(b), b));
  const originals = names.map((n) => [n, dense(model, n)] as const);
  const xMean = meanAbs(batches.map(inputOf), originals[0][1].inFeatures);
  const losses: number[] = [];
  let best: { alpha: number; loss: number; scales: Float32Array } = {
    alpha: -1,
    loss: Number.POSITIVE_INFINITY,
    scales: new Float32Array(0),
  };
  try {
    for (let i = 0; i < o.grid; i++) {
      const alpha = i / o.grid;
      const s = candidateScales(xMean, alpha);
      for (const [name, layer] of originals) {
        const [rows, cols] = layer.weight.shape;
        const w = scaledQuantized(layer.weight.data as Float32Array, rows, cols, s, o);
        model.setLinear(name, new DenseLinear(new Tensor(w, [rows, cols]), layer.bias));
      }
      let sum = 0;
      let count = 0;
      batches.forEach((b, j) => {
        sum += squaredDifference(reference[j], run(inputOf(b), b));
        count += reference[j].length;
      });
      const loss = sum / count;
      losses.push(loss);
      if (loss < best.loss) best = { alpha, loss, scales: s };
    }
  } finally {
    for (const [name, layer] of originals) model.setLinear(name, layer);
  }
  if (best.alpha < 0) throw new Error(`awq: no finite loss in the scale search of ${prefix}.${group.prev}`);
  return {
    prev: `${prefix}.${group.prev}`,
    linears: names,
    alpha: best.alpha,
    loss: best.loss,
    losses,
    scales: best.scales,
  };
}

/** Every applicable group of block `block` searched on the unscaled block, in the spec's order. */
export function searchScales(
  model: CausalLM,
  block: number,
  batches: readonly RecordedBatch[],
  o: ScaleSettings,
  onGroup?: (search: ScaleSearch) => void,
): ScaleSearch[] {
  return scalingGroups(model, model.blockPrefix(block)).map((g) => {
    const search = searchGroup(model, block, g, batches, o);
    onGroup?.(search);
    return search;
  });
}

function divideInPlace(d: Float32Array, s: Float32Array, stride: number): void {
  for (let i = 0; i < d.length; i += stride) for (let c = 0; c < stride; c++) d[i + c] = d[i + c] / s[c];
}

/** Folds 1/s into the prev op's output: a norm's weight and bias, or the last s.length rows of a linear and its bias. */
function foldIntoPrev(model: CausalLM, prev: string, s: Float32Array): void {
  if (model.linears().has(prev)) {
    const { weight, bias } = dense(model, prev);
    const [rows, cols] = weight.shape;
    const w = weight.data as Float32Array;
    const first = rows - s.length;
    for (let r = first; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c] = w[r * cols + c] / s[r - first];
    if (bias !== null) divideInPlace(bias.data as Float32Array, s, s.length);
    return;
  }
  const norm = model.norm(prev);
  divideInPlace(norm.weight.data as Float32Array, s, s.length);
  if (norm.bias !== null) divideInPlace(norm.bias.data as Float32Array, s, s.length);
}

/** Folds every search's scales into the block in list order and divides the recorded inputs of each group by s. */
export function applyScales(
  model: CausalLM,
  searches: readonly ScaleSearch[],
  batches: readonly RecordedBatch[],
): void {
  for (const { prev, linears, scales: s } of searches) {
    foldIntoPrev(model, prev, s);
    for (const name of linears) {
      const w = dense(model, name).weight.data as Float32Array;
      for (let i = 0; i < w.length; i += s.length) for (let c = 0; c < s.length; c++) w[i + c] = w[i + c] * s[c];
    }
    for (const b of batches) {
      const shared = new Set(linears.map((n) => b.inputs.get(n)!)); // q/k/v (gate/up) share one input tensor
      for (const x of shared) divideInPlace(x.data as Float32Array, s, s.length);
    }
  }
}
