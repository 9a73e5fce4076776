/**
 * A parsed `model.quantize` section (snake_case, defaults applied by src/recipe/schema.ts) -> the library's one
 * quantization options object (src/quant/options.ts). The only place the two spellings meet: `wct quantize`
 * and `wct-train` both come through here.
 */
import { quantMethod } from '../quant/methods.js';
import type { QuantizeOptions } from '../quant/options.js';
import { quantizeSchema, type QuantizeRecipe } from './schema.js';

export function toQuantizeOptions(q: QuantizeRecipe): QuantizeOptions {
  return {
    method: q.method,
    bits: q.wbits,
    groupSize: q.group_size,
    tuning: q.tuning,
    actOrder: q.act_order,
    trueSequential: q.true_sequential,
    percdamp: q.percdamp,
    awq: {
      scale: q.awq_scale ?? quantMethod(q.method).awq === 'full',
      clip: q.awq_clip ?? quantMethod(q.method).awq === 'full',
      grid: q.awq_grid,
    },
    gwq: { score: q.gwq_score, quantizer: q.gwq_quantizer, outlierRatio: q.outlier_ratio },
    sensitivity: q.sensitivity,
    gradSamples: q.grad_samples,
    budget:
      q.target_bit !== undefined
        ? { targetBit: q.target_bit }
        : q.target_rank !== undefined
          ? { targetRank: q.target_rank }
          : null,
    embedBits: q.embed_bits ?? null,
    calibration: {
      data: q.calib,
      tokensFile: q.calib_tokens ?? null,
      nsamples: q.nsamples,
      seqlen: q.seqlen ?? null,
      seed: q.seed,
      dtype: q.calib_dtype,
    },
  };
}

/** Options from a partial section (library callers, tests, benches): the schema's defaults, validated; throws a ZodError. */
export function quantizeOptions(section: Record<string, unknown>): QuantizeOptions {
  return toQuantizeOptions(quantizeSchema.parse(section));
}
