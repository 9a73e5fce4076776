/**
 * The OPT family spec (OPT-125m..66b pre-LN, OPT-350m post-LN with project_in/out): config normalisation with
 * OPTConfig's defaults, tensor names, shapes, the builder of the forward pass (src/models/opt.ts) and the
 * quantization description.
 */
import { OptModel, type OptConfig, type OptLinear } from '../opt.js';
import { SIZE_LIMITS as MAX, type ConfigFields } from './config-fields.js';
import { setBlockLinearShapes, type BlockLinear, type FamilySpec, type TensorNames } from './spec.js';

export type { OptConfig } from '../opt.js';

/** OPT's learned positional embedding reserves the first two rows. */
export const OPT_POSITION_OFFSET = 2;

/** Decoder-level module names (the block-level ones are in optNames). */
export const OPT_MODULES = {
  positions: 'model.decoder.embed_positions',
  projectIn: 'model.decoder.project_in',
  projectOut: 'model.decoder.project_out',
  finalNorm: 'model.decoder.final_layer_norm',
};

function parseOpt(f: ConfigFields): OptConfig {
  const hiddenSize = f.size('hidden_size', MAX.width);
  const numHeads = f.size('num_attention_heads', MAX.heads);
  if (hiddenSize % numHeads !== 0)
    f.fail('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize}`);
  if (f.bool('_remove_final_layer_norm', false)) f.fail('_remove_final_layer_norm', 'true is not supported');
  const vocabSize = f.size('vocab_size', MAX.vocab);
  return {
    family: 'opt',
    hiddenSize,
    ffnDim: f.size('ffn_dim', MAX.mlpWidth),
    numLayers: f.size('num_hidden_layers', MAX.layers),
    numHeads,
    vocabSize,
    maxPositions: f.size('max_position_embeddings', MAX.positions),
    wordEmbedProjDim: f.size('word_embed_proj_dim', MAX.width, hiddenSize),
    doLayerNormBefore: f.bool('do_layer_norm_before', true),
    activation: f.oneOf('activation_function', ['relu', 'gelu'], 'relu'),
    enableBias: f.bool('enable_bias', true),
    layerNormElementwiseAffine: f.bool('layer_norm_elementwise_affine', true),
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
    bosTokenId: f.tokenId('bos_token_id', 2, vocabSize),
    eosTokenId: f.tokenId('eos_token_id', 2, vocabSize),
    padTokenId: f.tokenId('pad_token_id', 1, vocabSize),
  };
}

export const OPT_NAMES: TensorNames = {
  tokenEmbedding: 'model.decoder.embed_tokens',
  lmHead: 'lm_head',
  block: (i) => `model.decoder.layers.${i}`,
  blockNorms: ['self_attn_layer_norm', 'final_layer_norm'],
};

/** The block linears by role, relative to the block prefix. */
const OPT_LINEARS: Record<OptLinear, string> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  out: 'self_attn.out_proj',
  fc1: 'fc1',
  fc2: 'fc2',
};

function optBlockLinears(c: OptConfig): BlockLinear[] {
  const [H, F, b] = [c.hiddenSize, c.ffnDim, c.enableBias];
  const linear = (role: OptLinear, out: number, inp: number): BlockLinear => ({
    name: OPT_LINEARS[role],
    out,
    in: inp,
    bias: b,
  });
  return [
    linear('q', H, H),
    linear('k', H, H),
    linear('v', H, H),
    linear('out', H, H),
    linear('fc1', F, H),
    linear('fc2', H, F),
  ];
}

function optShapes(c: OptConfig): Map<string, number[]> {
  const [H, V, P] = [c.hiddenSize, c.vocabSize, c.wordEmbedProjDim];
  const names = OPT_NAMES;
  const m = new Map<string, number[]>([
    [`${names.tokenEmbedding}.weight`, [V, P]],
    [`${OPT_MODULES.positions}.weight`, [c.maxPositions + OPT_POSITION_OFFSET, H]],
  ]);
  const layerNorm = (name: string) => {
    if (!c.layerNormElementwiseAffine) return;
    m.set(`${name}.weight`, [H]);
    m.set(`${name}.bias`, [H]);
  };
  if (P !== H) {
    m.set(`${OPT_MODULES.projectIn}.weight`, [H, P]);
    m.set(`${OPT_MODULES.projectOut}.weight`, [P, H]);
  }
  for (let i = 0; i < c.numLayers; i++) {
    setBlockLinearShapes(m, names.block(i), optBlockLinears(c));
    for (const norm of names.blockNorms) layerNorm(`${names.block(i)}.${norm}`);
  }
  if (c.doLayerNormBefore) layerNorm(OPT_MODULES.finalNorm);
  m.set(`${names.lmHead}.weight`, [V, P]);
  return m;
}

export const optFamily: FamilySpec<OptConfig> = {
  modelTypes: ['opt'],
  architectures: { OPTForCausalLM: 'opt' },
  parseConfig: parseOpt,
  names: OPT_NAMES,
  blockLinears: optBlockLinears,
  tensorShapes: optShapes,
  build: (c, weights, linears) =>
    new OptModel(c, weights, linears, {
      names: OPT_NAMES,
      linearNames: OPT_LINEARS,
      ...OPT_MODULES,
      positionOffset: OPT_POSITION_OFFSET,
      blockLinears: optBlockLinears(c),
    }),
  quant: {
    owqRatio: {
      'self_attn.q_proj': 1,
      'self_attn.k_proj': 1,
      'self_attn.v_proj': 1,
      'self_attn.out_proj': 1,
      fc1: 0.25,
      fc2: 0.25,
    },
    sequential: [
      ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
      ['self_attn.out_proj'],
      ['fc1'],
      ['fc2'],
    ],
    unclipped: ['self_attn.q_proj', 'self_attn.k_proj'],
    scaling: [
      {
        prev: 'self_attn_layer_norm',
        linears: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
        inspect: 'attention',
      },
      {
        prev: 'self_attn.v_proj',
        linears: ['self_attn.out_proj'],
        inspect: { linear: 'self_attn.out_proj' },
        requiresSameShape: true,
      },
      { prev: 'final_layer_norm', linears: ['fc1'], inspect: { linear: 'fc1' } },
      { prev: 'fc1', linears: ['fc2'], inspect: { linear: 'fc2' } },
    ],
  },
  bpe: { specialTokensFromConfig: true },
  // word_embed_proj_dim follows hidden_size: a random checkpoint has no projection unless the preset has one
  sizeKeys: {
    layers: ['num_hidden_layers'],
    hiddenSize: ['hidden_size', 'word_embed_proj_dim'],
    intermediateSize: ['ffn_dim'],
    numHeads: ['num_attention_heads'],
  },
};
