/**
 * What a model family is, as data: one FamilySpec per architecture (./llama.ts, ./qwen2.ts, ./qwen3.ts, ./opt.ts), found
 * through ./registry.ts by config.json's `model_type`. A spec parses and normalises the config, names every
 * tensor, lists the linears of a block with their shapes, builds the model (its forward pass lives in one file
 * per family under src/models/) and describes how the family is quantized. No other file names a family or
 * spells a tensor name: adding a family is one spec file plus its registry entry.
 */
import type { BpeConventions } from '../../io/tokenizer-bpe-files.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { LinearLayer } from '../linear.js';
import type { BlockLinear, BlockPart, CausalLM, ModelConfig } from '../model.js';
import type { ConfigFields } from './config-fields.js';

export type { BlockLinear, BlockPart, ModelConfig } from '../model.js';

/**
 * An AWQ scaling group: `linears` share the input produced by `prev` (a norm or a linear of the block), so a
 * per-channel scale s folds into prev (1/s) and into the linears' input columns (s). The search compares the
 * output of `inspect`: a block part run on its own, or one linear.
 */
export interface ScalingGroup {
  prev: string;
  linears: string[];
  inspect: BlockPart | { linear: string };
  /** Only when prev's and the linears' weights have the same shape (v_proj -> o_proj; not so under grouped-query attention). */
  requiresSameShape?: boolean;
}

/** How the family is quantized: per linear of a block, OWQ's weak-column ratio; the --true-sequential groups; AWQ's scaling groups. */
export interface QuantDescription {
  /** OWQ's weak-column ratio by block linear (xvyaward/owq model_config: 1 for attention, less for the MLP). */
  owqRatio: Record<string, number>;
  /** Groups of block linears quantized one after another under --true-sequential, in forward order. */
  sequential: string[][];
  scaling: ScalingGroup[];
  /** Block linears AWQ's clip search leaves alone: q and k (their product through the attention is hard to clip). */
  unclipped: string[];
}

/** Where the tensors live, by canonical Hugging Face name (what `*ForCausalLM.save_pretrained` writes). */
export interface TensorNames {
  /** Module name of the token embedding table (its tensor is `<name>.weight`). */
  tokenEmbedding: string;
  /** Module name of the output projection. */
  lmHead: string;
  /** Name prefix of decoder block i. */
  block(i: number): string;
  /** The norms of a decoder block, relative to its prefix (each has `.weight` and possibly `.bias`). */
  blockNorms: readonly string[];
}

/** The sizes `wct init-random` can override in a preset's config.json. */
export type SizeOption = 'layers' | 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim';

export interface FamilySpec<C extends ModelConfig = ModelConfig> {
  /** config.json model_type values this spec reads (the registry's keys). */
  modelTypes: readonly string[];
  /** config.json `architectures` entries that name it when model_type is missing, with the model_type each means. */
  architectures: Readonly<Record<string, string>>;
  /** The normalised config from config.json's fields; errors name the field (ConfigFields.fail). */
  parseConfig(fields: ConfigFields, modelType: string): C;
  names: TensorNames;
  /** The linears of every decoder block, in forward order. */
  blockLinears(config: C): BlockLinear[];
  /** Every tensor of a checkpoint by canonical name, with its stored shape ([out, in] for linear weights). */
  tensorShapes(config: C): Map<string, number[]>;
  /** The model over `weights`; `linears` supplies layers (e.g. packed) for some linears instead of dense weights. */
  build(config: C, weights: Map<string, Tensor>, linears: ReadonlyMap<string, LinearLayer>): CausalLM;
  quant: QuantDescription;
  bpe: BpeConventions;
  /** The config.json keys each size override sets (an option the family has no key for is refused). */
  sizeKeys: Partial<Record<SizeOption, string[]>>;
}

/** The weights (and biases) of the block linears under block prefix p, into m. */
export function setBlockLinearShapes(m: Map<string, number[]>, p: string, linears: BlockLinear[]): void {
  for (const l of linears) {
    m.set(`${p}.${l.name}.weight`, [l.out, l.in]);
    if (l.bias) m.set(`${p}.${l.name}.bias`, [l.out]);
  }
}
