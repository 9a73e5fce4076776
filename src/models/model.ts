/**
 * What every causal language model of the project offers to evaluation, generation, quantization and training, and
 * the one check of sequence lengths against the model's position limit that every family and command shares.
 */
import { checkpoint, type RopeTable } from '../autograd/index.js';
import { OptionError } from '../errors.js';
import type { GpuContext } from '../gpu/array.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv-cache.js';
import { DenseLinear, type LinearLayer } from './linear.js';

/** What every family's normalised config carries (src/models/families/); family-specific configs extend it. */
export interface ModelConfig {
  /** The forward pass the config runs through (src/models/<family>.ts). */
  family: string;
  /** config.json's model_type when the family reads several (llama, mistral, qwen2); else the family is the type. */
  modelType?: string;
  hiddenSize: number;
  numLayers: number;
  vocabSize: number;
  /** The longest sequence the model runs (max_position_embeddings, or less where the family says so). */
  maxPositions: number;
  /** The config.json fields maxPositions comes from, for errors (absent: max_position_embeddings). */
  maxPositionsFrom?: string;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

/** A linear layer of a decoder block: its name relative to the block prefix, [out, in], and whether it has a bias. */
export interface BlockLinear {
  name: string;
  out: number;
  in: number;
  bias: boolean;
}

/** A part of a decoder block that runs on its own: from its norm's output to the output added to the residual. */
export type BlockPart = 'attention' | 'mlp';

/** A norm's parameters; writing into their data changes the model (AWQ folds scales into them). */
export interface NormTensors {
  weight: Tensor;
  bias: Tensor | null;
}

export interface ForwardOptions {
  /** Rows of `ids`; ids.length must be batch * T. */
  batch: number;
  /** Continue from cached keys/values (generation, batch 1). */
  cache?: KVCache;
  /** Gradient checkpointing: each block recomputed in the backward instead of its activations kept (training). */
  checkpoint?: boolean;
}

/** What the blocks of one forward pass share: sizes, the cache, the RoPE table (Llama). */
export interface BlockContext {
  batch: number;
  seq: number;
  cache?: KVCache;
  rope?: RopeTable;
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** Number of decoder blocks (config.numLayers). */
  readonly numBlocks: number;
  /** ids [B*T] -> logits [B, T, V]: embed, every block, head. */
  forward(ids: Int32Array, options: ForwardOptions): Tensor;
  /** ids [B*T] -> the input of block 0, h [B, T, C], and the context every block of this pass shares. */
  embed(ids: Int32Array, options: ForwardOptions): { h: Tensor; ctx: BlockContext };
  /** h [B, T, C] through decoder block i. */
  block(i: number, h: Tensor, ctx: BlockContext): Tensor;
  /** x [B, T, C], the output of the part's norm, through the attention or the MLP of block i alone (no residual). */
  blockPart(i: number, part: BlockPart, x: Tensor, ctx: BlockContext): Tensor;
  /** The norm `name` (canonical module name, e.g. model.layers.0.input_layernorm). */
  norm(name: string): NormTensors;
  /** h [B, T, C] after the last block -> logits [B, T, V]; advances the cache. */
  head(h: Tensor, ctx: BlockContext): Tensor;
  newCache(maxLength: number): KVCache;
  /** Every tensor of the model by its canonical Hugging Face name. */
  parameters(): Map<string, Tensor>;
  /** The quantizable linear layers by canonical name (e.g. model.layers.0.self_attn.q_proj). */
  linears(): Map<string, LinearLayer>;
  /** The canonical name prefix of block i (model.layers.3 / model.decoder.layers.3). */
  blockPrefix(i: number): string;
  /** Replaces a quantizable linear (a quantized, packed or adapted layer of the same shape). */
  setLinear(name: string, layer: LinearLayer): void;
  /**
   * Moves every weight to the GPU of `ctx`, or back to the host (null), in place (src/models/move.ts); the model
   * then runs where its weights are and its caches are made there.
   */
  toDevice(ctx: GpuContext | null): Promise<void>;
}

/** The problem with running `positions` positions (`what`, e.g. "1100 positions"), or null when the model takes them. */
export function positionsProblem(
  config: ModelConfig,
  positions: number,
  what = `${positions} positions`,
): string | null {
  if (positions <= config.maxPositions) return null;
  return `${what} exceed the model's limit of ${config.maxPositions} positions (config.json ${config.maxPositionsFrom ?? 'max_position_embeddings'})`;
}

/** Throws an OptionError naming `option` when `positions` exceed the model's limit (config.maxPositions). */
export function checkPositions(config: ModelConfig, positions: number, option: string, what?: string): void {
  const problem = positionsProblem(config, positions, what);
  if (problem !== null) throw new OptionError(option, problem);
}

/** The full forward pass every model shares: embed, the blocks in order, the head. */
export function forwardBlocks(model: CausalLM, ids: Int32Array, options: ForwardOptions): Tensor {
  const { h: h0, ctx } = model.embed(ids, options);
  let h = h0;
  for (let i = 0; i < model.numBlocks; i++)
    h = options.checkpoint === true ? checkpoint((x) => model.block(i, x, ctx), h) : model.block(i, h, ctx);
  return model.head(h, ctx);
}

/** The norm `name` among a model's tensors (`<name>.weight`, `<name>.bias` when present). */
export function normTensors(weights: ReadonlyMap<string, Tensor>, name: string): NormTensors {
  const weight = weights.get(`${name}.weight`);
  if (weight === undefined) throw new Error(`model: no norm named ${name}`);
  return { weight, bias: weights.get(`${name}.bias`) ?? null };
}

/** The linear registry both families keep: canonical name -> layer, replaced only by a same-shaped layer. */
export class LinearRegistry {
  private readonly layers = new Map<string, LinearLayer>();

  /** Registers the linears of the block at `prefix`: the layer `given` holds (packed), else a DenseLinear over
   * `<name>.weight` and, when the linear has one, `<name>.bias` from `tensor`. */
  addBlock(
    prefix: string,
    linears: readonly BlockLinear[],
    tensor: (name: string) => Tensor,
    given: ReadonlyMap<string, LinearLayer>,
  ): void {
    for (const { name: short, bias } of linears) {
      const name = `${prefix}.${short}`;
      this.add(
        name,
        given.get(name) ?? new DenseLinear(tensor(`${name}.weight`), bias ? tensor(`${name}.bias`) : null),
      );
    }
  }

  add(name: string, layer: LinearLayer): void {
    this.layers.set(name, layer);
  }

  get(name: string): LinearLayer {
    const layer = this.layers.get(name);
    if (layer === undefined) throw new Error(`model: no linear layer named ${name}`);
    return layer;
  }

  replace(name: string, layer: LinearLayer): void {
    const old = this.get(name);
    if (old.inFeatures !== layer.inFeatures || old.outFeatures !== layer.outFeatures) {
      throw new RangeError(
        `model: ${name} is [${old.outFeatures}, ${old.inFeatures}], the replacement is [${layer.outFeatures}, ${layer.inFeatures}]`,
      );
    }
    this.layers.set(name, layer);
  }

  all(): Map<string, LinearLayer> {
    return this.layers;
  }
}
