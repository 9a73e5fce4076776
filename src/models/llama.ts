/**
 * Llama family forward pass (LLaMA 1/2/3, Mistral, Qwen2-style q/k/v bias, TinyStories-656K):
 *   h = embed(ids)
 *   per layer: h += o_proj(attn(rope(q_proj(rms(h))), rope(k_proj(.)), v_proj(.)))
 *              h += down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
 *   logits = lm_head(rms(h))
 * Shapes: ids [B*T], h [B, T, C], q [B, T, H, D], k/v [B, T, Hkv, D].
 */
import { add, attention, mul, reshape, rmsnorm, rope, ropeTable, silu } from '../autograd/index.js';
import { blockPrefix, tokenEmbeddingName, type LlamaConfig } from '../io/hf-config.js';
import type { Tensor } from '../tensor/tensor.js';
import { KVCache } from './kv-cache.js';
import type { LinearLayer } from './linear.js';
import { forwardBlocks, LinearRegistry, type BlockContext, type CausalLM, type ForwardOptions } from './model.js';
import { outputHead, tokenEmbedding, type TokenEmbedding } from './token-embedding.js';

/** The non-linear parameters of one block; its linears live in the registry under `${prefix}.${name}`. */
interface LlamaNorms {
  inputNorm: Tensor;
  postNorm: Tensor;
}

export class LlamaModel implements CausalLM {
  readonly numBlocks: number;
  private readonly norms: LlamaNorms[];
  private readonly tokens: TokenEmbedding;
  private readonly norm: Tensor;
  private readonly lmHead: LinearLayer;
  private readonly registry = new LinearRegistry();

  constructor(
    readonly config: LlamaConfig,
    private readonly weights: Map<string, Tensor>,
    /** Layers to use instead of dense ones (a packed checkpoint's quantized linears), by canonical name. */
    private readonly given: ReadonlyMap<string, LinearLayer> = new Map(),
  ) {
    this.numBlocks = config.numLayers;
    this.tokens = tokenEmbedding(tokenEmbeddingName(config), weights, given);
    this.norm = this.tensor('model.norm.weight');
    this.lmHead = outputHead(weights, given, this.tokens);
    this.norms = Array.from({ length: config.numLayers }, (_, i) => this.blockParameters(i));
  }

  private tensor(name: string): Tensor {
    const t = this.weights.get(name);
    if (t === undefined) throw new Error(`llama: missing tensor ${name}`);
    return t;
  }

  private blockParameters(i: number): LlamaNorms {
    const p = this.blockPrefix(i);
    this.registry.addBlock(this.config, i, (name) => this.tensor(name), this.given);
    return {
      inputNorm: this.tensor(`${p}.input_layernorm.weight`),
      postNorm: this.tensor(`${p}.post_attention_layernorm.weight`),
    };
  }

  blockPrefix(i: number): string {
    return blockPrefix(this.config, i);
  }

  parameters(): Map<string, Tensor> {
    return this.weights;
  }

  linears(): Map<string, LinearLayer> {
    return this.registry.all();
  }

  setLinear(name: string, layer: LinearLayer): void {
    this.registry.replace(name, layer);
  }

  newCache(maxLength: number): KVCache {
    const { numLayers, numKvHeads, headDim } = this.config;
    return new KVCache(numLayers, maxLength, numKvHeads, headDim, this.tokens.dtype);
  }

  forward(ids: Int32Array, options: ForwardOptions): Tensor {
    return forwardBlocks(this, ids, options);
  }

  embed(ids: Int32Array, { batch, cache }: ForwardOptions): { h: Tensor; ctx: BlockContext } {
    const c = this.config;
    const seq = ids.length / batch;
    const rope = ropeTable(cache?.length ?? 0, seq, c.headDim, c.ropeTheta, this.tokens.dtype);
    return { h: this.tokens.lookup(ids, [batch, seq]), ctx: { batch, seq, cache, rope } };
  }

  block(i: number, h: Tensor, ctx: BlockContext): Tensor {
    const eps = this.config.rmsNormEps;
    const { inputNorm, postNorm } = this.norms[i];
    const linear = (name: string) => this.registry.get(`${this.blockPrefix(i)}.${name}`);
    h = add(h, this.attention(i, linear, rmsnorm(h, inputNorm, eps), ctx));
    const x = rmsnorm(h, postNorm, eps);
    const gated = mul(silu(linear('mlp.gate_proj').forward(x)), linear('mlp.up_proj').forward(x));
    return add(h, linear('mlp.down_proj').forward(gated));
  }

  head(h: Tensor, ctx: BlockContext): Tensor {
    ctx.cache?.advance(ctx.seq);
    return this.lmHead.forward(rmsnorm(h, this.norm, this.config.rmsNormEps));
  }

  private attention(index: number, linear: (name: string) => LinearLayer, x: Tensor, ctx: BlockContext): Tensor {
    const { numHeads, numKvHeads, headDim } = this.config;
    const { batch, seq, cache, rope: table } = ctx;
    const q = rope(reshape(linear('self_attn.q_proj').forward(x), [batch, seq, numHeads, headDim]), table!);
    let k = rope(reshape(linear('self_attn.k_proj').forward(x), [batch, seq, numKvHeads, headDim]), table!);
    let v = reshape(linear('self_attn.v_proj').forward(x), [batch, seq, numKvHeads, headDim]);
    if (cache !== undefined) ({ k, v } = cache.append(index, k, v));
    const a = attention(q, k, v, 1 / Math.sqrt(headDim));
    return linear('self_attn.o_proj').forward(reshape(a, [batch, seq, numHeads * headDim]));
  }
}
