/**
 * Llama family forward pass (LLaMA 1/2/3, Mistral, Qwen2-style q/k/v bias, Qwen3's q/k norm, TinyStories-656K):
 *   h = embed(ids)
 *   per layer: h += o_proj(attn(rope(qn(q_proj(rms(h)))), rope(kn(k_proj(.))), v_proj(.)))
 *              h += down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
 *   logits = lm_head(rms(h))
 * qn / kn: Qwen3's RMSNorm over head_dim of each head (the identity elsewhere). RoPE's frequencies follow
 * config.json's rope_scaling (src/autograd/ops/rope-frequencies.ts), recomputed per forward for the length it
 * reaches; under the KV cache, cached keys keep the rotation of the forward that appended them, as in HF.
 * Shapes: ids [B*T], h [B, T, C], q [B, T, H, D], k/v [B, T, Hkv, D].
 */
import { add, attention, mul, reshape, rmsnorm, rope, ropeTable, silu } from '../autograd/index.js';
import type { RopeScaling } from '../autograd/ops/rope-frequencies.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorNames } from './families/spec.js';
import { KVCache } from './kv-cache.js';
import { moveModel } from './move.js';
import type { GpuContext } from '../gpu/array.js';
import type { LinearLayer } from './linear.js';
import {
  checkPositions,
  forwardBlocks,
  LinearRegistry,
  normTensors,
  type BlockContext,
  type BlockLinear,
  type BlockPart,
  type CausalLM,
  type ForwardOptions,
  type ModelConfig,
  type NormTensors,
} from './model.js';
import { outputHead, tokenEmbedding, type TokenEmbedding } from './token-embedding.js';

export interface LlamaConfig extends ModelConfig {
  family: 'llama';
  modelType: 'llama' | 'mistral' | 'qwen2' | 'qwen3';
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** Qwen3: RMSNorm (weights [head_dim], eps rms_norm_eps) on each head of q and k before RoPE. */
  qkNorm: boolean;
  /** Bias on q/k/v_proj: Qwen2 always, Llama when attention_bias is true. */
  attentionBias: boolean;
  /** Bias on o_proj: Llama's attention_bias covers o_proj too; Qwen2's o_proj has none. */
  attentionOutBias: boolean;
  mlpBias: boolean;
  hiddenAct: 'silu';
}

/** The linears of a Llama block by role. */
export type LlamaLinear = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/** What the family spec (src/models/families/llama.ts) tells the forward pass: tensor names and block linears. */
export interface LlamaLayout {
  names: TensorNames;
  /** Each role's linear, by name relative to the block prefix. */
  linearNames: Record<LlamaLinear, string>;
  /** Module name of the final RMSNorm. */
  finalNorm: string;
  /** Modules of the q and k head norms relative to the block prefix (read when config.qkNorm). */
  qkNorms: { q: string; k: string };
  blockLinears: BlockLinear[];
}

/** The non-linear parameters of one block; its linears live in the registry under `${prefix}.${name}`. */
interface LlamaNorms {
  inputNorm: Tensor;
  postNorm: Tensor;
  /** [D] each, when config.qkNorm */
  qNorm: Tensor | null;
  kNorm: Tensor | null;
}

export class LlamaModel implements CausalLM {
  readonly numBlocks: number;
  private readonly norms: LlamaNorms[];
  private readonly tokens: TokenEmbedding;
  private readonly finalNorm: Tensor;
  private readonly lmHead: LinearLayer;
  private readonly registry = new LinearRegistry();

  constructor(
    readonly config: LlamaConfig,
    private readonly weights: Map<string, Tensor>,
    /** Layers to use instead of dense ones (a packed checkpoint's quantized linears), by canonical name. */
    private readonly given: ReadonlyMap<string, LinearLayer>,
    private readonly layout: LlamaLayout,
  ) {
    this.numBlocks = config.numLayers;
    this.tokens = tokenEmbedding(layout.names.tokenEmbedding, weights, given);
    this.finalNorm = this.tensor(`${layout.finalNorm}.weight`);
    this.lmHead = outputHead(layout.names.lmHead, weights, given, this.tokens);
    this.norms = Array.from({ length: config.numLayers }, (_, i) => this.blockParameters(i));
  }

  private tensor(name: string): Tensor {
    const t = this.weights.get(name);
    if (t === undefined) throw new Error(`llama: missing tensor ${name}`);
    return t;
  }

  private blockParameters(i: number): LlamaNorms {
    const p = this.blockPrefix(i);
    this.registry.addBlock(p, this.layout.blockLinears, (name) => this.tensor(name), this.given);
    const [inputNorm, postNorm] = this.layout.names.blockNorms;
    const { q, k } = this.layout.qkNorms;
    const headNorm = (name: string) => (this.config.qkNorm ? this.tensor(`${p}.${name}.weight`) : null);
    return {
      inputNorm: this.tensor(`${p}.${inputNorm}.weight`),
      postNorm: this.tensor(`${p}.${postNorm}.weight`),
      qNorm: headNorm(q),
      kNorm: headNorm(k),
    };
  }

  blockPrefix(i: number): string {
    return this.layout.names.block(i);
  }

  norm(name: string): NormTensors {
    return normTensors(this.weights, name);
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

  toDevice(ctx: GpuContext | null): Promise<void> {
    return moveModel(this.weights.values(), [...this.registry.all().values(), this.lmHead, this.tokens.head], ctx);
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
    const start = cache?.length ?? 0;
    checkPositions(c, start + seq, 'sequence length');
    const rope = ropeTable(start, seq, c.headDim, c.ropeTheta, this.tokens.dtype, c.ropeScaling);
    return { h: this.tokens.lookup(ids, [batch, seq]), ctx: { batch, seq, cache, rope } };
  }

  block(i: number, h: Tensor, ctx: BlockContext): Tensor {
    const eps = this.config.rmsNormEps;
    const { inputNorm, postNorm } = this.norms[i];
    h = add(h, this.attention(i, rmsnorm(h, inputNorm, eps), ctx));
    return add(h, this.mlp(i, rmsnorm(h, postNorm, eps)));
  }

  blockPart(i: number, part: BlockPart, x: Tensor, ctx: BlockContext): Tensor {
    return part === 'attention' ? this.attention(i, x, ctx) : this.mlp(i, x);
  }

  head(h: Tensor, ctx: BlockContext): Tensor {
    ctx.cache?.advance(ctx.seq);
    return this.lmHead.forward(rmsnorm(h, this.finalNorm, this.config.rmsNormEps));
  }

  private linear(i: number, role: LlamaLinear): LinearLayer {
    return this.registry.get(`${this.blockPrefix(i)}.${this.layout.linearNames[role]}`);
  }

  /** down(silu(gate(x)) * up(x)) */
  private mlp(i: number, x: Tensor): Tensor {
    const gated = mul(silu(this.linear(i, 'gate').forward(x)), this.linear(i, 'up').forward(x));
    return this.linear(i, 'down').forward(gated);
  }

  private attention(index: number, x: Tensor, ctx: BlockContext): Tensor {
    const linear = (role: LlamaLinear) => this.linear(index, role);
    const { numHeads, numKvHeads, headDim, rmsNormEps } = this.config;
    const { batch, seq, cache, rope: table } = ctx;
    const { qNorm, kNorm } = this.norms[index];
    const heads = (role: LlamaLinear, n: number, norm: Tensor | null) => {
      const y = reshape(linear(role).forward(x), [batch, seq, n, headDim]);
      return norm === null ? y : rmsnorm(y, norm, rmsNormEps);
    };
    const q = rope(heads('q', numHeads, qNorm), table!);
    let k = rope(heads('k', numKvHeads, kNorm), table!);
    let v = heads('v', numKvHeads, null);
    if (cache !== undefined) ({ k, v } = cache.append(index, k, v));
    const a = attention(q, k, v, 1 / Math.sqrt(headDim));
    return linear('o').forward(reshape(a, [batch, seq, numHeads * headDim]));
  }
}
