/**
 * Llama family forward pass (LLaMA 1/2/3, Mistral, Qwen2-style q/k/v bias, TinyStories-656K):
 *   h = embed(ids)
 *   per layer: h += o_proj(attn(rope(q_proj(rms(h))), rope(k_proj(.)), v_proj(.)))
 *              h += down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
 *   logits = lm_head(rms(h))
 * Shapes: ids [B*T], h [B, T, C], q [B, T, H, D], k/v [B, T, Hkv, D].
 */
import { add, attention, embedding, mul, reshape, rmsnorm, rope, ropeTable, silu } from '../autograd/index.js';
import type { LlamaConfig } from '../io/hf-config.js';
import { Tensor } from '../tensor/tensor.js';
import { KVCache } from './kv-cache.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import type { CausalLM, ForwardOptions } from './model.js';

interface LlamaLayer {
  inputNorm: Tensor;
  postNorm: Tensor;
  q: LinearLayer;
  k: LinearLayer;
  v: LinearLayer;
  o: LinearLayer;
  gate: LinearLayer;
  up: LinearLayer;
  down: LinearLayer;
}

export class LlamaModel implements CausalLM {
  private readonly layers: LlamaLayer[];
  private readonly embed: Tensor;
  private readonly norm: Tensor;
  private readonly lmHead: LinearLayer;
  private readonly linearMap = new Map<string, LinearLayer>();

  constructor(
    readonly config: LlamaConfig,
    private readonly weights: Map<string, Tensor>,
  ) {
    this.embed = this.tensor('model.embed_tokens.weight');
    this.norm = this.tensor('model.norm.weight');
    this.lmHead = new DenseLinear(weights.get('lm_head.weight') ?? this.embed);
    this.layers = Array.from({ length: config.numLayers }, (_, i) => this.layer(i));
  }

  private tensor(name: string): Tensor {
    const t = this.weights.get(name);
    if (t === undefined) throw new Error(`llama: missing tensor ${name}`);
    return t;
  }

  private dense(prefix: string, bias: boolean): LinearLayer {
    const layer = new DenseLinear(this.tensor(`${prefix}.weight`), bias ? this.tensor(`${prefix}.bias`) : null);
    this.linearMap.set(prefix, layer);
    return layer;
  }

  private layer(i: number): LlamaLayer {
    const p = `model.layers.${i}`;
    const { attentionBias, attentionOutBias, mlpBias } = this.config;
    return {
      inputNorm: this.tensor(`${p}.input_layernorm.weight`),
      postNorm: this.tensor(`${p}.post_attention_layernorm.weight`),
      q: this.dense(`${p}.self_attn.q_proj`, attentionBias),
      k: this.dense(`${p}.self_attn.k_proj`, attentionBias),
      v: this.dense(`${p}.self_attn.v_proj`, attentionBias),
      o: this.dense(`${p}.self_attn.o_proj`, attentionOutBias),
      gate: this.dense(`${p}.mlp.gate_proj`, mlpBias),
      up: this.dense(`${p}.mlp.up_proj`, mlpBias),
      down: this.dense(`${p}.mlp.down_proj`, mlpBias),
    };
  }

  parameters(): Map<string, Tensor> {
    return this.weights;
  }

  linears(): Map<string, LinearLayer> {
    return this.linearMap;
  }

  newCache(maxLength: number): KVCache {
    const { numLayers, numKvHeads, headDim } = this.config;
    return new KVCache(numLayers, maxLength, numKvHeads, headDim, this.embed.data);
  }

  forward(ids: Int32Array, { batch, cache }: ForwardOptions): Tensor {
    const c = this.config;
    const seq = ids.length / batch;
    const start = cache?.length ?? 0;
    const table = ropeTable(start, seq, c.headDim, c.ropeTheta, this.embed.dtype);
    let h = embedding(this.embed, ids, [batch, seq]);
    this.layers.forEach((layer, i) => {
      h = add(h, this.attentionBlock(layer, i, rmsnorm(h, layer.inputNorm, c.rmsNormEps), table, batch, seq, cache));
      const x = rmsnorm(h, layer.postNorm, c.rmsNormEps);
      h = add(h, layer.down.forward(mul(silu(layer.gate.forward(x)), layer.up.forward(x))));
    });
    cache?.advance(seq);
    return this.lmHead.forward(rmsnorm(h, this.norm, c.rmsNormEps));
  }

  private attentionBlock(
    layer: LlamaLayer,
    index: number,
    x: Tensor,
    table: ReturnType<typeof ropeTable>,
    batch: number,
    seq: number,
    cache: KVCache | undefined,
  ): Tensor {
    const { numHeads, numKvHeads, headDim } = this.config;
    const q = rope(reshape(layer.q.forward(x), [batch, seq, numHeads, headDim]), table);
    let k = rope(reshape(layer.k.forward(x), [batch, seq, numKvHeads, headDim]), table);
    let v = reshape(layer.v.forward(x), [batch, seq, numKvHeads, headDim]);
    if (cache !== undefined) ({ k, v } = cache.append(index, k, v));
    const a = attention(q, k, v, 1 / Math.sqrt(headDim));
    return layer.o.forward(reshape(a, [batch, seq, numHeads * headDim]));
  }
}
