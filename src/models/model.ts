/** What every causal language model of the project offers to evaluation, generation, quantization and training. */
import type { RopeTable } from '../autograd/index.js';
import { blockLinears, blockPrefix, type ModelConfig } from '../io/hf-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv-cache.js';
import { DenseLinear, type LinearLayer } from './linear.js';

export interface ForwardOptions {
  /** Rows of `ids`; ids.length must be batch * T. */
  batch: number;
  /** Continue from cached keys/values (generation, batch 1). */
  cache?: KVCache;
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
}

/** The full forward pass every model shares: embed, the blocks in order, the head. */
export function forwardBlocks(model: CausalLM, ids: Int32Array, options: ForwardOptions): Tensor {
  const { h: h0, ctx } = model.embed(ids, options);
  let h = h0;
  for (let i = 0; i < model.numBlocks; i++) h = model.block(i, h, ctx);
  return model.head(h, ctx);
}

/** The linear registry both families keep: canonical name -> layer, replaced only by a same-shaped layer. */
export class LinearRegistry {
  private readonly layers = new Map<string, LinearLayer>();

  /** Registers the linears of block i (blockLinears of the config): the layer `given` holds (packed), else a
   * DenseLinear over `<name>.weight` and, when the config gives it one, `<name>.bias` from `tensor`. */
  addBlock(config: ModelConfig, i: number, tensor: (name: string) => Tensor, given: ReadonlyMap<string, LinearLayer>): void {
    for (const { name: short, bias } of blockLinears(config)) {
      const name = `${blockPrefix(config, i)}.${short}`;
      this.add(name, given.get(name) ?? new DenseLinear(tensor(`${name}.weight`), bias ? tensor(`${name}.bias`) : null));
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
