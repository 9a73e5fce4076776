/**
 * The tensors a Hugging Face checkpoint of a given config must contain, by canonical name (the
 * names `*ForCausalLM.save_pretrained` writes: `model.` prefix, `lm_head.weight`), with shapes
 * as stored ([out, in] for linear weights).
 *
 * Names found in the wild are resolved to the canonical ones: checkpoints saved from the bare
 * `OPTModel` / `LlamaModel` drop the `model.` prefix (`decoder.layers.0...`), and tied models may
 * keep the shared embedding under `lm_head.weight` only (TinyStories-656K does).
 */
import { InputError } from './errors.js';
import type { LlamaConfig, ModelConfig, OptConfig } from './hf-config.js';
import type { TensorInfo } from './safetensors-read.js';

const LM_HEAD = 'lm_head.weight';
const EMBEDDINGS = new Set(['model.embed_tokens.weight', 'model.decoder.embed_tokens.weight']);
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/** The module name of the token embedding table: model.embed_tokens (Llama), model.decoder.embed_tokens (OPT). */
export function tokenEmbeddingName(cfg: ModelConfig): string {
  return cfg.family === 'llama' ? 'model.embed_tokens' : 'model.decoder.embed_tokens';
}

/** The canonical name prefix of decoder block i: model.layers.i (Llama), model.decoder.layers.i (OPT). */
export function blockPrefix(cfg: ModelConfig, i: number): string {
  return cfg.family === 'llama' ? `model.layers.${i}` : `model.decoder.layers.${i}`;
}

/** A linear layer of a decoder block: its name relative to the block prefix, [out, in], and whether it has a bias. */
export interface BlockLinear {
  name: string;
  out: number;
  in: number;
  bias: boolean;
}

/** The linears of every decoder block of `cfg`, in forward order: the one list models, loaders and quantizers share. */
export function blockLinears(cfg: ModelConfig): BlockLinear[] {
  const linear = (name: string, out: number, inp: number, bias: boolean): BlockLinear => ({ name, out, in: inp, bias });
  if (cfg.family === 'opt') {
    const [H, F, b] = [cfg.hiddenSize, cfg.ffnDim, cfg.enableBias];
    return [
      linear('self_attn.q_proj', H, H, b), linear('self_attn.k_proj', H, H, b), linear('self_attn.v_proj', H, H, b),
      linear('self_attn.out_proj', H, H, b), linear('fc1', F, H, b), linear('fc2', H, F, b),
    ];
  }
  const [H, I] = [cfg.hiddenSize, cfg.intermediateSize];
  const qDim = cfg.numHeads * cfg.headDim;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  return [
    linear('self_attn.q_proj', qDim, H, cfg.attentionBias),
    linear('self_attn.k_proj', kvDim, H, cfg.attentionBias),
    linear('self_attn.v_proj', kvDim, H, cfg.attentionBias),
    linear('self_attn.o_proj', H, qDim, cfg.attentionOutBias),
    linear('mlp.gate_proj', I, H, cfg.mlpBias),
    linear('mlp.up_proj', I, H, cfg.mlpBias),
    linear('mlp.down_proj', H, I, cfg.mlpBias),
  ];
}

/** Weight (and bias) shapes of block i's linears into m. */
function setBlockLinears(m: Map<string, number[]>, cfg: ModelConfig, i: number): void {
  for (const l of blockLinears(cfg)) {
    m.set(`${blockPrefix(cfg, i)}.${l.name}.weight`, [l.out, l.in]);
    if (l.bias) m.set(`${blockPrefix(cfg, i)}.${l.name}.bias`, [l.out]);
  }
}

function llamaShapes(c: LlamaConfig): Map<string, number[]> {
  const [H, V] = [c.hiddenSize, c.vocabSize];
  const m = new Map<string, number[]>([[`${tokenEmbeddingName(c)}.weight`, [V, H]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = blockPrefix(c, i);
    setBlockLinears(m, c, i);
    m.set(`${p}.input_layernorm.weight`, [H]);
    m.set(`${p}.post_attention_layernorm.weight`, [H]);
  }
  m.set('model.norm.weight', [H]);
  m.set(LM_HEAD, [V, H]);
  return m;
}

function optShapes(c: OptConfig): Map<string, number[]> {
  const [H, V, P] = [c.hiddenSize, c.vocabSize, c.wordEmbedProjDim];
  const d = 'model.decoder';
  const m = new Map<string, number[]>([
    [`${tokenEmbeddingName(c)}.weight`, [V, P]],
    [`${d}.embed_positions.weight`, [c.maxPositions + 2, H]], // OPT offsets positions by 2
  ]);
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    m.set(`${name}.weight`, [out, inp]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  const layerNorm = (name: string) => {
    if (!c.layerNormElementwiseAffine) return;
    m.set(`${name}.weight`, [H]);
    m.set(`${name}.bias`, [H]);
  };
  if (P !== H) {
    linear(`${d}.project_in`, H, P, false);
    linear(`${d}.project_out`, P, H, false);
  }
  for (let i = 0; i < c.numLayers; i++) {
    const p = blockPrefix(c, i);
    setBlockLinears(m, c, i);
    layerNorm(`${p}.self_attn_layer_norm`);
    layerNorm(`${p}.final_layer_norm`);
  }
  if (c.doLayerNormBefore) layerNorm(`${d}.final_layer_norm`);
  m.set(LM_HEAD, [V, P]);
  return m;
}

/**
 * Every tensor of the checkpoint by canonical name, with its shape. `lm_head.weight` is always
 * listed; for tied models it is optional (the embedding serves as the output projection).
 */
export function expectedTensorShapes(cfg: ModelConfig): Map<string, number[]> {
  return cfg.family === 'llama' ? llamaShapes(cfg) : optShapes(cfg);
}

/** Stored names that may hold `canonical`, most specific first. */
function candidates(canonical: string, tied: boolean): string[] {
  const names = [canonical];
  if (canonical.startsWith('model.')) names.push(canonical.slice('model.'.length));
  if (tied && EMBEDDINGS.has(canonical)) names.push(LM_HEAD);
  return names;
}

/**
 * The name under which `available` holds the canonical tensor, or undefined. Lenient: it accepts
 * the tied-embedding alias without knowing the config; checkTensors is what enforces the config.
 */
export function resolveTensorName(available: ReadonlySet<string>, canonical: string): string | undefined {
  return candidates(canonical, true).find((name) => available.has(name));
}

/**
 * Throws an InputError (naming `file`) for the first required tensor that is missing, has a
 * shape other than the config implies, or is not a float tensor. Extra tensors are ignored, and so are
 * those in `skip` (the weights of a packed checkpoint's quantized linears, checked by its own loader).
 */
export function checkTensors(
  file: string,
  cfg: ModelConfig,
  index: { names(): string[]; info(name: string): TensorInfo },
  skip: ReadonlySet<string> = new Set(),
): void {
  const available = new Set(index.names());
  for (const [canonical, shape] of expectedTensorShapes(cfg)) {
    if (skip.has(canonical)) continue;
    const stored = candidates(canonical, cfg.tieWordEmbeddings).find((name) => available.has(name));
    if (stored === undefined) {
      if (canonical === LM_HEAD && cfg.tieWordEmbeddings) continue;
      throw new InputError(file, canonical, `missing (expected shape [${shape}] from config.json)`);
    }
    const info = index.info(stored);
    if (String(info.shape) !== String(shape)) {
      throw new InputError(file, stored, `shape [${info.shape}] does not match config (expected [${shape}])`);
    }
    if (!FLOAT_DTYPES.has(info.dtype)) throw new InputError(file, stored, `dtype ${info.dtype} is not a float type`);
  }
}
