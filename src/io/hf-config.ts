/**
 * Hugging Face `config.json` -> a normalized, typed ModelConfig.
 *
 * Families: llama (model_type llama, mistral, qwen2) and opt. Defaults are the transformers
 * config classes' defaults (LlamaConfig, MistralConfig, Qwen2Config, OPTConfig). A missing or
 * mistyped required field, an unknown architecture, or an option this project does not implement
 * is an InputError naming config.json and the field.
 */
import path from 'node:path';
import { InputError } from './errors.js';
import { readJsonObject } from './json-file.js';

export interface LlamaConfig {
  family: 'llama';
  modelType: 'llama' | 'mistral' | 'qwen2';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** max_position_embeddings, capped at Mistral's sliding_window (see parseLlama). */
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v_proj: Qwen2 always, Llama when attention_bias is true. */
  attentionBias: boolean;
  /** Bias on o_proj: Llama's attention_bias covers o_proj too; Qwen2's o_proj has none. */
  attentionOutBias: boolean;
  mlpBias: boolean;
  hiddenAct: 'silu';
  bosTokenId: number | null;
  /** The first id when config.json lists several (Llama 3). */
  eosTokenId: number | null;
}

export interface OptConfig {
  family: 'opt';
  hiddenSize: number;
  ffnDim: number;
  numLayers: number;
  numHeads: number;
  vocabSize: number;
  /** max_position_embeddings; the position table has 2 more rows (OPT's offset of 2). */
  maxPositions: number;
  wordEmbedProjDim: number;
  doLayerNormBefore: boolean;
  activation: 'relu' | 'gelu';
  enableBias: boolean;
  layerNormElementwiseAffine: boolean;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

export type ModelConfig = LlamaConfig | OptConfig;

const MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'opt'] as const;
type ModelType = (typeof MODEL_TYPES)[number];
const ARCHITECTURES: Record<string, ModelType> = {
  LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2', OPTForCausalLM: 'opt',
};

/** Typed access to config fields; `dflt` makes a field optional (absent or null -> dflt). */
class Fields {
  constructor(private file: string, private raw: Record<string, unknown>) {}

  fail(key: string, problem: string): never {
    throw new InputError(this.file, key, problem);
  }

  private get<T>(key: string, ok: (v: unknown) => boolean, what: string, dflt?: T): T {
    const v = this.raw[key];
    if (v === undefined || (v === null && dflt !== undefined)) {
      if (dflt === undefined) this.fail(key, `missing; expected ${what}`);
      return dflt;
    }
    if (!ok(v)) this.fail(key, `expected ${what}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  count(key: string, dflt?: number): number {
    return this.get(key, (v) => Number.isSafeInteger(v) && (v as number) > 0, 'a positive integer', dflt);
  }

  number(key: string, dflt?: number): number {
    return this.get(key, (v) => typeof v === 'number' && Number.isFinite(v), 'a number', dflt);
  }

  bool(key: string, dflt?: boolean): boolean {
    return this.get(key, (v) => typeof v === 'boolean', 'true or false', dflt);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], dflt?: T): T {
    return this.get(key, (v) => allowed.includes(v as T), `one of ${allowed.join(', ')}`, dflt);
  }

  /** A token id, null, or (eos in Llama 3) a list of ids of which the first is kept. */
  tokenId(key: string, dflt: number | null): number | null {
    const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    const v = this.raw[key];
    if (v === undefined) return dflt;
    if (v === null || isId(v)) return v as number | null;
    if (Array.isArray(v) && v.length > 0 && v.every(isId)) return v[0] as number;
    this.fail(key, `expected a token id, a list of token ids, or null, got ${JSON.stringify(v)}`);
  }
}

function modelTypeOf(f: Fields, raw: Record<string, unknown>): ModelType {
  const supported = `supported: ${MODEL_TYPES.join(', ')}`;
  const { model_type: type, architectures: archs } = raw;
  if (type !== undefined) {
    if (MODEL_TYPES.includes(type as ModelType)) return type as ModelType;
    f.fail('model_type', `${JSON.stringify(type)} is not supported (${supported})`);
  }
  const fromArch = Array.isArray(archs) ? archs.map((a) => ARCHITECTURES[a as string]).find(Boolean) : undefined;
  if (fromArch) return fromArch;
  f.fail('architectures', `${JSON.stringify(archs ?? null)} names no supported model and model_type is missing (${supported})`);
}

/** RoPE variants other than the plain one change the model's numbers: refuse them. */
function checkRopeScaling(f: Fields, scaling: unknown): void {
  if (scaling === undefined || scaling === null) return;
  const kind = typeof scaling === 'object' ? ((scaling as Record<string, unknown>).rope_type ?? (scaling as Record<string, unknown>).type) : scaling;
  if (kind !== 'default') f.fail('rope_scaling', `${JSON.stringify(kind)} scaling is not supported (supported: null or "default")`);
}

function parseLlama(f: Fields, raw: Record<string, unknown>, modelType: LlamaConfig['modelType']): LlamaConfig {
  const hiddenSize = f.count('hidden_size');
  const numHeads = f.count('num_attention_heads');
  const numKvHeads = f.count('num_key_value_heads', numHeads);
  if (raw.head_dim == null && hiddenSize % numHeads !== 0) {
    f.fail('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize}`);
  }
  if (numHeads % numKvHeads !== 0) f.fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  const headDim = f.count('head_dim', hiddenSize / numHeads);
  // RoPE rotates the pairs (i, i + head_dim / 2) of every head (HF's rotate_half).
  if (headDim % 2 !== 0) {
    if (raw.head_dim != null) f.fail('head_dim', `${headDim} is odd; RoPE needs an even head_dim`);
    f.fail('num_attention_heads', `${numHeads} gives head_dim ${headDim} (hidden_size ${hiddenSize} / ${numHeads}), odd; RoPE needs an even head_dim`);
  }
  checkRopeScaling(f, raw.rope_scaling);
  if (modelType === 'qwen2' && f.bool('use_sliding_window', false)) f.fail('use_sliding_window', 'sliding-window attention is not supported');
  // Mistral v0.1 attends within a 4096-token window; for sequences no longer than the window that
  // is ordinary causal attention, so capping the usable length keeps the model exact.
  const window = modelType === 'mistral' ? f.count('sliding_window', Infinity) : Infinity;
  const attentionBias = modelType === 'qwen2' || f.bool('attention_bias', false);
  return {
    family: 'llama',
    modelType,
    hiddenSize,
    intermediateSize: f.count('intermediate_size'),
    numLayers: f.count('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: f.count('vocab_size'),
    maxPositions: Math.min(f.count('max_position_embeddings'), window),
    rmsNormEps: f.number('rms_norm_eps', 1e-6),
    ropeTheta: f.number('rope_theta', 10000),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    attentionBias,
    attentionOutBias: modelType !== 'qwen2' && attentionBias,
    mlpBias: f.bool('mlp_bias', false),
    hiddenAct: f.oneOf('hidden_act', ['silu'], 'silu'),
    bosTokenId: f.tokenId('bos_token_id', 1),
    eosTokenId: f.tokenId('eos_token_id', 2),
  };
}

function parseOpt(f: Fields): OptConfig {
  const hiddenSize = f.count('hidden_size');
  const numHeads = f.count('num_attention_heads');
  if (hiddenSize % numHeads !== 0) f.fail('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize}`);
  if (f.bool('_remove_final_layer_norm', false)) f.fail('_remove_final_layer_norm', 'true is not supported');
  return {
    family: 'opt',
    hiddenSize,
    ffnDim: f.count('ffn_dim'),
    numLayers: f.count('num_hidden_layers'),
    numHeads,
    vocabSize: f.count('vocab_size'),
    maxPositions: f.count('max_position_embeddings'),
    wordEmbedProjDim: f.count('word_embed_proj_dim', hiddenSize),
    doLayerNormBefore: f.bool('do_layer_norm_before', true),
    activation: f.oneOf('activation_function', ['relu', 'gelu'], 'relu'),
    enableBias: f.bool('enable_bias', true),
    layerNormElementwiseAffine: f.bool('layer_norm_elementwise_affine', true),
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    bosTokenId: f.tokenId('bos_token_id', 2),
    eosTokenId: f.tokenId('eos_token_id', 2),
    padTokenId: f.tokenId('pad_token_id', 1),
  };
}

/** Normalizes the parsed contents of a config.json; `file` names it in errors. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): ModelConfig {
  const f = new Fields(file, raw);
  const modelType = modelTypeOf(f, raw);
  return modelType === 'opt' ? parseOpt(f) : parseLlama(f, raw, modelType);
}

/** Reads and normalizes `<dir>/config.json`. */
export function readConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  return parseConfig(readJsonObject(file), file);
}

export { blockLinears, blockPrefix, checkTensors, expectedTensorShapes, resolveTensorName, tokenEmbeddingName, type BlockLinear } from './hf-tensors.js';
