/**
 * The quantization methods, one record each, keyed by name: what statistic the block pipeline collects for it,
 * an optional transform of a block run before any of the block's linears is quantized (AWQ's scale and clip
 * search), and its per-linear quantizer. The pipeline (./pipeline.ts), the recipe schema's method check, the `wct quantize --method`
 * choices and quantization_config.json all read this registry; a new method is one registerMethod call (and its
 * algorithm in a file of its own), with no change to the pipeline.
 */
import { OptionError } from '../errors.js';
import type { CausalLM } from '../models/model.js';
import { awqBlock, awqSteps, type AwqSettings } from './awq.js';
import { awqQuantize } from './awq-quantizer.js';
import type { GradientPass } from './gradients.js';
import {
  gwqQuantize,
  outlierCountOf,
  SCORE_STATISTIC,
  scoreOf,
  topScores,
  type GwqQuantizer,
  type GwqScore,
} from './gwq.js';
import type { RecordedBatch } from './linear-inputs.js';
import { fisherSensitivity, owq } from './owq.js';
import type { QuantStage } from './pipeline.js';
import type { QuantizedColumns } from './quantized.js';
import type { Tuning } from './quantizer.js';
import { rtn } from './rtn.js';

/**
 * What the pipeline gathers over the calibration windows before a linear is quantized:
 * - none: nothing (no calibration data is read);
 * - hessian: each linear's input Hessian H = (2/N) sum X^T X, with the block fed the outputs of the already
 *   quantized previous blocks (GPTQ's error propagation);
 * - activations: nothing beyond the block transform's recorded inputs, with the block fed the outputs of the
 *   full-precision, untransformed previous blocks (AWQ propagates no quantization error).
 */
export type Statistic = 'none' | 'hessian' | 'activations';

/** GWQ-style's choices (./gwq.ts). */
export interface GwqSettings {
  score: GwqScore;
  quantizer: GwqQuantizer;
  /** ρ: the fraction of each linear's weights kept as outliers. */
  outlierRatio: number;
}

/** The settings every method receives (src/quant/options.ts QuantizeOptions, less what the pipeline itself uses). */
export interface MethodSettings {
  bits: number;
  /** Input columns per quantization group; 0 = one group per row. */
  groupSize: number;
  tuning: Tuning;
  actOrder: boolean;
  /** Damping as a fraction of mean(diag H). */
  percdamp: number;
  /** AWQ's scale search (awq, and before OWQ/GPTQ) and clip search (awq only). */
  awq: AwqSettings;
  gwq: GwqSettings;
  /** OWQ's column sensitivity: the Hessian diagonal (the reference's) or the diagonal Fisher of the gradients. */
  sensitivity: 'hessian' | 'fisher';
  /** S: calibration windows of the gradient pass (gwq, owq --sensitivity fisher). */
  gradSamples: number;
}

/** The gradient settings of a run that takes no gradients (library callers of methods other than gwq). */
export const NO_GRADIENTS: Pick<MethodSettings, 'gwq' | 'sensitivity' | 'gradSamples'> = {
  gwq: { score: 'grad', quantizer: 'rtn', outlierRatio: 0 },
  sensitivity: 'hessian',
  gradSamples: 1,
};

/** What the gradient pass found for one linear: its outliers (gwq) or its column sensitivity (owq fisher). */
export interface GradientFinding {
  /** Sorted flat indices r * cols + c. */
  outliers?: Int32Array;
  /** [cols] */
  sensitivity?: Float32Array;
}

/** One linear handed to a method's quantizer: W [rows, cols] (read-only), its weak-column count and its statistic. */
export interface LinearToQuantize {
  /** Canonical name, e.g. model.layers.0.self_attn.q_proj. */
  name: string;
  weight: Float32Array;
  rows: number;
  cols: number;
  /** Weak columns to keep in full precision (0 unless the method keeps them). */
  nOut: number;
  /** H [cols, cols] when the method's statistic is 'hessian'. */
  hessian: Float32Array | null;
  /** The gradient pass's finding when the method has one (`gradients`). */
  found: GradientFinding | null;
}

/** A decoder block as a transform sees it, before any of its linears is quantized. */
export interface BlockToTransform {
  model: CausalLM;
  block: number;
  /** Canonical name prefix of the block. */
  prefix: string;
  /** Every linear's input over the block's calibration batches (none when the statistic is 'none'). */
  inputs: readonly RecordedBatch[];
}

/** A method's rewrite of each block's weights and norms before they are quantized (host models only). */
export interface BlockTransform {
  /** The progress steps `run` reports per block of `model`. */
  steps(model: CausalLM): number;
  /** Transforms the block in place, reporting each step; returns what quantization_config.json records of it. */
  run(block: BlockToTransform, step: (stage: QuantStage, item: string) => void): object;
}

export interface QuantMethod {
  name: string;
  /** One line for --help and the docs. */
  describe: string;
  /** What the pipeline gathers for these settings. */
  statistic(settings: MethodSettings): Statistic;
  /** Whether the method keeps OWQ weak columns (target_bit / target_rank apply). */
  weakColumns: boolean;
  /** Whether its packed checkpoints hold sparse outliers (train.trainable outliers / both apply). */
  outliers: boolean;
  /** AWQ's parts it runs: full = scale and clip search, on by default (awq); scale = the scale search on request
   * (owq, gptq); none. */
  awq: 'full' | 'scale' | 'none';
  /** The default quantizer tuning when the user gives none. */
  defaultTuning: Tuning;
  /** The transform run on each block before any of its linears is quantized, for these settings (null: none). */
  transform?(settings: MethodSettings): BlockTransform | null;
  /** The gradient pass run once on the full-precision model before any block is quantized (null: none). */
  gradients?(settings: MethodSettings): GradientPass<GradientFinding> | null;
  quantizeLinear(linear: LinearToQuantize, settings: MethodSettings): QuantizedColumns;
}

function hessianOf(linear: LinearToQuantize): Float32Array {
  if (linear.hessian === null) throw new Error(`quantize: no Hessian was captured for ${linear.name}`);
  return linear.hessian;
}

/** OWQ's quantizer (GPTQ over the non-weak columns); GPTQ is the case of no weak columns. */
function owqLinear(l: LinearToQuantize, s: MethodSettings): QuantizedColumns {
  return owq(l.weight, hessianOf(l), l.rows, l.cols, {
    bits: s.bits,
    nOut: l.nOut,
    tuning: s.tuning,
    groupSize: s.groupSize,
    actOrder: s.actOrder,
    percdamp: s.percdamp,
    sensitivity: l.found?.sensitivity,
  });
}

function foundOutliers(l: LinearToQuantize): Int32Array {
  if (l.found?.outliers === undefined) throw new Error(`quantize: no outliers were located for ${l.name}`);
  return l.found.outliers;
}

const registry = new Map<string, QuantMethod>();

/** Adds a method; a name already taken is a bug. */
export function registerMethod(method: QuantMethod): void {
  if (registry.has(method.name)) throw new Error(`quantization method ${method.name} is registered twice`);
  registry.set(method.name, method);
}

/** Every registered method's name, in registration order. */
export function methodNames(): string[] {
  return [...registry.keys()];
}

/** The method `name`; an unknown name is an OptionError on `method`. */
export function quantMethod(name: string): QuantMethod {
  const method = registry.get(name);
  if (method === undefined)
    throw new OptionError('method', `expected ${methodNames().join(', ')}, got ${JSON.stringify(name)}`);
  return method;
}

/** AWQ's scale search (and clip search, when `clip`) as a block transform; null when neither runs. */
function awqTransform(s: MethodSettings, clip: boolean): BlockTransform | null {
  const awq = { ...s.awq, clip };
  if (!awq.scale && !awq.clip) return null;
  return {
    steps: (model) => awqSteps(model, awq),
    run: ({ model, block, inputs }, step) =>
      awqBlock({ model, block, inputs, bits: s.bits, groupSize: s.groupSize }, awq, step),
  };
}

/** GPTQ and OWQ, optionally after AWQ's scale search and fold (`awq.scale`; no clip search). */
const hessianMethod = {
  statistic: () => 'hessian' as const,
  transform: (s: MethodSettings) => awqTransform(s, false),
  quantizeLinear: owqLinear,
};

registerMethod({
  name: 'rtn',
  describe: 'round-to-nearest, min-max per row or group, no calibration',
  statistic: () => 'none',
  weakColumns: false,
  outliers: false,
  awq: 'none',
  defaultTuning: 'minmax',
  quantizeLinear: (l, s) => rtn(l.weight, l.rows, l.cols, { bits: s.bits, groupSize: s.groupSize }),
});

registerMethod({
  name: 'gptq',
  describe: 'GPTQ: column-by-column with Hessian error compensation',
  weakColumns: false,
  outliers: false,
  awq: 'scale',
  defaultTuning: 'minmax',
  ...hessianMethod,
});

registerMethod({
  name: 'owq',
  describe: 'OWQ: GPTQ with the most sensitive input columns kept in fp16 (weak columns)',
  weakColumns: true,
  outliers: false,
  awq: 'scale',
  defaultTuning: 'mse',
  ...hessianMethod,
  gradients: (s) =>
    s.sensitivity === 'fisher'
      ? {
          statistic: 'squares',
          windows: s.gradSamples,
          reduce: (_, fisher, w, rows, cols) => ({
            sensitivity: fisherSensitivity(w, fisher, rows, cols, s.bits, s.tuning),
          }),
        }
      : null,
});

registerMethod({
  name: 'gwq',
  describe:
    'GWQ-style: the top fraction of weights by calibration-gradient score kept in fp16 as sparse outliers, the rest RTN or GPTQ',
  statistic: (s) => (s.gwq.quantizer === 'gptq' ? 'hessian' : 'none'),
  weakColumns: false,
  outliers: true,
  awq: 'none',
  defaultTuning: 'minmax',
  gradients: (s) => ({
    statistic: SCORE_STATISTIC[s.gwq.score],
    windows: s.gradSamples,
    reduce: (_, stat, _w, rows, cols) => ({
      outliers: topScores(scoreOf(s.gwq.score, stat, s.gradSamples), outlierCountOf(rows, cols, s.gwq.outlierRatio)),
    }),
  }),
  quantizeLinear: (l, s) =>
    gwqQuantize(l.weight, l.rows, l.cols, foundOutliers(l), {
      bits: s.bits,
      groupSize: s.groupSize,
      quantizer: s.gwq.quantizer,
      hessian: l.hessian,
      percdamp: s.percdamp,
      tuning: s.tuning,
    }),
});

registerMethod({
  name: 'awq',
  describe: "AWQ: activation-aware scale search folded into the previous op, clip search, AWQ's own-range quantizer",
  statistic: (s) => (awqTransform(s, s.awq.clip) === null ? 'none' : 'activations'),
  transform: (s) => awqTransform(s, s.awq.clip),
  weakColumns: false,
  outliers: false,
  awq: 'full',
  defaultTuning: 'minmax',
  quantizeLinear: (l, s) => awqQuantize(l.weight, l.rows, l.cols, { bits: s.bits, groupSize: s.groupSize }),
});
