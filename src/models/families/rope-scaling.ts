/**
 * config.json's `rope_scaling` for the RoPE families: null, or an object whose `rope_type` (legacy `type`) is
 * default, linear, dynamic or llama3, with the fields transformers' rope_config_validation requires of each
 * (src/autograd/ops/rope-frequencies.ts computes what they mean). Other types (yarn, longrope, su, ntk, ...) scale
 * cos/sin or pick per-length factor lists and are refused with the field named. Where HF only warns (factor < 1,
 * high_freq_factor <= low_freq_factor) this refuses: such values divide by zero or shrink the context.
 */
import { PLAIN_ROPE, type RopeScaling } from '../../autograd/ops/rope-frequencies.js';
import { SIZE_LIMITS as MAX, type ConfigFields } from './config-fields.js';

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;

/** The RoPE scaling of the config; `maxPositionEmbeddings` is its max_position_embeddings (dynamic's M). */
export function parseRopeScaling(f: ConfigFields, maxPositionEmbeddings: number): RopeScaling {
  if (f.value('rope_scaling') == null) return PLAIN_ROPE;
  const s = f.nested('rope_scaling');
  const type = s.oneOf(
    s.value('rope_type') === undefined && s.value('type') !== undefined ? 'type' : 'rope_type',
    ROPE_TYPES,
  );
  switch (type) {
    case 'default':
      return PLAIN_ROPE;
    case 'linear':
      return { type, factor: extensionFactor(s, maxPositionEmbeddings) };
    case 'dynamic':
      return { type, factor: extensionFactor(s, maxPositionEmbeddings), maxPositionEmbeddings };
    case 'llama3': {
      const lowFreqFactor = s.positive('low_freq_factor');
      const highFreqFactor = s.positive('high_freq_factor');
      if (highFreqFactor <= lowFreqFactor)
        s.fail('high_freq_factor', `${highFreqFactor} must be greater than low_freq_factor ${lowFreqFactor}`);
      return {
        type,
        factor: s.atLeast('factor', 1),
        lowFreqFactor,
        highFreqFactor,
        originalMaxPositions: s.size('original_max_position_embeddings', MAX.positions),
      };
    }
  }
}

/** A linear / dynamic factor: at least 1, and the extended length within SIZE_LIMITS.positions. */
function extensionFactor(s: ConfigFields, maxPositionEmbeddings: number): number {
  const factor = s.atLeast('factor', 1);
  if (maxPositionEmbeddings * factor > MAX.positions)
    s.fail(
      'factor',
      `${factor} extends max_position_embeddings ${maxPositionEmbeddings} beyond ${MAX.positions} positions`,
    );
  return factor;
}

/**
 * The longest sequence the scaled model runs, as vLLM derives max_model_len: linear and dynamic extend
 * max_position_embeddings by their factor (their configs keep the original length), llama3's configs already
 * declare the extended one.
 */
export function scaledPositions(scaling: RopeScaling, maxPositionEmbeddings: number): number {
  const extended = scaling.type === 'linear' || scaling.type === 'dynamic';
  return extended ? Math.floor(maxPositionEmbeddings * scaling.factor) : maxPositionEmbeddings;
}
