/**
 * The Llama family spec (LLaMA 1/2/3, Mistral, TinyStories-656K; Qwen2 and Qwen3 reuse it in ./qwen2.ts,
 * ./qwen3.ts): config normalisation with the transformers defaults (LlamaConfig, MistralConfig), rope_scaling
 * (./rope-scaling.ts), tensor names, shapes, the builder of the forward pass (src/models/llama.ts) and the
 * quantization description.
 *
 * Sliding-window attention (Mistral v0.1's sliding_window 4096) is ordinary causal attention for sequences no
 * longer than the window, so the usable length is capped at the window and longer sequences are refused, naming
 * sliding_window: the attention kernels have no window mask.
 */
import { LlamaModel, type LlamaConfig, type LlamaLinear } from '../llama.js';
import { SIZE_LIMITS as MAX, type ConfigFields } from './config-fields.js';
import { parseRopeScaling, scaledPositions } from './rope-scaling.js';
import { setBlockLinearShapes, type BlockLinear, type FamilySpec, type TensorNames } from './spec.js';

export type { LlamaConfig } from '../llama.js';

/** How a Llama-style model_type differs from Llama: biases, sliding window, q/k norm, head_dim's default. */
export interface LlamaVariant {
  bias: { attention: boolean; attentionOut: boolean; mlp: boolean };
  /** The attention window of some layer (positions), or null when every layer attends to the whole sequence. */
  window: number | null;
  qkNorm: boolean;
  /** head_dim when the config has none (Qwen3Config: 128); absent: hidden_size / num_attention_heads. */
  headDim?: number;
}

/** The usable length: max_position_embeddings extended by the RoPE scaling, capped at the window. */
function usableLength(
  declared: number,
  scaled: number,
  window: number | null,
): Pick<LlamaConfig, 'maxPositions' | 'maxPositionsFrom'> {
  if (window !== null && window < scaled)
    return { maxPositions: window, maxPositionsFrom: 'sliding_window; attention beyond the window is not implemented' };
  if (scaled !== declared)
    return { maxPositions: scaled, maxPositionsFrom: 'max_position_embeddings × rope_scaling.factor' };
  return { maxPositions: declared };
}

/** The fields Llama-style configs share, read as `variant` says. */
export function parseLlamaFields(
  f: ConfigFields,
  modelType: LlamaConfig['modelType'],
  variant: LlamaVariant,
): LlamaConfig {
  const hiddenSize = f.size('hidden_size', MAX.width);
  const numHeads = f.size('num_attention_heads', MAX.heads);
  const numKvHeads = f.size('num_key_value_heads', MAX.heads, numHeads);
  if (f.value('head_dim') == null && variant.headDim === undefined && hiddenSize % numHeads !== 0) {
    f.fail('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize}`);
  }
  if (numHeads % numKvHeads !== 0) {
    f.fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  const headDim = f.size('head_dim', MAX.headDim, variant.headDim ?? hiddenSize / numHeads);
  // RoPE rotates the pairs (i, i + head_dim / 2) of every head (HF's rotate_half).
  if (headDim % 2 !== 0) {
    if (f.value('head_dim') != null) f.fail('head_dim', `${headDim} is odd; RoPE needs an even head_dim`);
    f.fail(
      'num_attention_heads',
      `${numHeads} gives head_dim ${headDim} (hidden_size ${hiddenSize} / ${numHeads}), odd; RoPE needs an even head_dim`,
    );
  }
  const declaredPositions = f.size('max_position_embeddings', MAX.positions);
  const ropeScaling = parseRopeScaling(f, declaredPositions);
  const vocabSize = f.size('vocab_size', MAX.vocab);
  const { bias } = variant;
  return {
    family: 'llama',
    modelType,
    hiddenSize,
    intermediateSize: f.size('intermediate_size', MAX.mlpWidth),
    numLayers: f.size('num_hidden_layers', MAX.layers),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    ...usableLength(declaredPositions, scaledPositions(ropeScaling, declaredPositions), variant.window),
    rmsNormEps: f.positive('rms_norm_eps', 1e-6),
    ropeTheta: f.atLeast('rope_theta', 1, 10000),
    ropeScaling,
    qkNorm: variant.qkNorm,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    attentionBias: bias.attention,
    attentionOutBias: bias.attentionOut,
    mlpBias: bias.mlp,
    hiddenAct: f.oneOf('hidden_act', ['silu'], 'silu'),
    bosTokenId: f.tokenId('bos_token_id', 1, vocabSize),
    eosTokenId: f.tokenId('eos_token_id', 2, vocabSize),
  };
}

function parseLlama(f: ConfigFields, modelType: string): LlamaConfig {
  const attention = f.bool('attention_bias', false);
  return parseLlamaFields(f, modelType as LlamaConfig['modelType'], {
    bias: { attention, attentionOut: attention, mlp: f.bool('mlp_bias', false) },
    window: modelType === 'mistral' ? windowOf(f) : null,
    qkNorm: false,
  });
}

/** sliding_window (null: none). */
export function windowOf(f: ConfigFields): number | null {
  return f.value('sliding_window') == null ? null : f.size('sliding_window', MAX.positions);
}

export const LLAMA_NAMES: TensorNames = {
  tokenEmbedding: 'model.embed_tokens',
  lmHead: 'lm_head',
  block: (i) => `model.layers.${i}`,
  blockNorms: ['input_layernorm', 'post_attention_layernorm'],
};

/** Final RMSNorm before lm_head. */
export const LLAMA_FINAL_NORM = 'model.norm';

/** Qwen3's RMSNorms over head_dim of each q and k head, relative to the block prefix (config.qkNorm). */
export const LLAMA_QK_NORMS = { q: 'self_attn.q_norm', k: 'self_attn.k_norm' } as const;

/** The block linears by role, relative to the block prefix. */
export const LLAMA_LINEARS: Record<LlamaLinear, string> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj',
  up: 'mlp.up_proj',
  down: 'mlp.down_proj',
};

export function llamaBlockLinears(c: LlamaConfig): BlockLinear[] {
  const [H, I] = [c.hiddenSize, c.intermediateSize];
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const linear = (role: LlamaLinear, out: number, inp: number, bias: boolean): BlockLinear => ({
    name: LLAMA_LINEARS[role],
    out,
    in: inp,
    bias,
  });
  return [
    linear('q', qDim, H, c.attentionBias),
    linear('k', kvDim, H, c.attentionBias),
    linear('v', kvDim, H, c.attentionBias),
    linear('o', H, qDim, c.attentionOutBias),
    linear('gate', I, H, c.mlpBias),
    linear('up', I, H, c.mlpBias),
    linear('down', H, I, c.mlpBias),
  ];
}

function llamaShapes(c: LlamaConfig): Map<string, number[]> {
  const [H, V] = [c.hiddenSize, c.vocabSize];
  const names = LLAMA_NAMES;
  const m = new Map<string, number[]>([[`${names.tokenEmbedding}.weight`, [V, H]]]);
  for (let i = 0; i < c.numLayers; i++) {
    setBlockLinearShapes(m, names.block(i), llamaBlockLinears(c));
    for (const norm of names.blockNorms) m.set(`${names.block(i)}.${norm}.weight`, [H]);
    if (c.qkNorm)
      for (const norm of Object.values(LLAMA_QK_NORMS)) m.set(`${names.block(i)}.${norm}.weight`, [c.headDim]);
  }
  m.set(`${LLAMA_FINAL_NORM}.weight`, [H]);
  m.set(`${names.lmHead}.weight`, [V, H]);
  return m;
}

export const llamaFamily: FamilySpec<LlamaConfig> = {
  modelTypes: ['llama', 'mistral'],
  architectures: { LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral' },
  parseConfig: parseLlama,
  names: LLAMA_NAMES,
  blockLinears: llamaBlockLinears,
  tensorShapes: llamaShapes,
  build: (c, weights, linears) =>
    new LlamaModel(c, weights, linears, {
      names: LLAMA_NAMES,
      linearNames: LLAMA_LINEARS,
      finalNorm: LLAMA_FINAL_NORM,
      qkNorms: LLAMA_QK_NORMS,
      blockLinears: llamaBlockLinears(c),
    }),
  quant: {
    owqRatio: {
      'self_attn.q_proj': 1,
      'self_attn.k_proj': 1,
      'self_attn.v_proj': 1,
      'self_attn.o_proj': 1,
      'mlp.gate_proj': 0.375,
      'mlp.up_proj': 0.375,
      'mlp.down_proj': 0.375,
    },
    sequential: [
      ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
      ['self_attn.o_proj'],
      ['mlp.up_proj', 'mlp.gate_proj'],
      ['mlp.down_proj'],
    ],
    unclipped: ['self_attn.q_proj', 'self_attn.k_proj'],
    scaling: [
      {
        prev: 'input_layernorm',
        linears: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
        inspect: 'attention',
      },
      {
        prev: 'self_attn.v_proj',
        linears: ['self_attn.o_proj'],
        inspect: { linear: 'self_attn.o_proj' },
        requiresSameShape: true,
      },
      { prev: 'post_attention_layernorm', linears: ['mlp.gate_proj', 'mlp.up_proj'], inspect: 'mlp' },
      { prev: 'mlp.up_proj', linears: ['mlp.down_proj'], inspect: { linear: 'mlp.down_proj' } },
    ],
  },
  bpe: { specialTokensFromConfig: false },
  sizeKeys: {
    layers: ['num_hidden_layers'],
    hiddenSize: ['hidden_size'],
    intermediateSize: ['intermediate_size'],
    numHeads: ['num_attention_heads'],
    numKvHeads: ['num_key_value_heads'],
    headDim: ['head_dim'],
  },
};
