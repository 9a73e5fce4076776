/** What every causal language model of the project offers to evaluation, generation and training. */
import type { ModelConfig } from '../io/hf-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv-cache.js';
import type { LinearLayer } from './linear.js';

export interface ForwardOptions {
  /** Rows of `ids`; ids.length must be batch * T. */
  batch: number;
  /** Continue from cached keys/values (generation, batch 1). */
  cache?: KVCache;
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** ids [B*T] -> logits [B, T, V] */
  forward(ids: Int32Array, options: ForwardOptions): Tensor;
  newCache(maxLength: number): KVCache;
  /** Every tensor of the model by its canonical Hugging Face name. */
  parameters(): Map<string, Tensor>;
  /** The quantizable linear layers by canonical name (e.g. model.layers.0.self_attn.q_proj). */
  linears(): Map<string, LinearLayer>;
}
