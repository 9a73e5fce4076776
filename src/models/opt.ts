/**
 * OPT forward pass (pre-LN as OPT-125m..66b, post-LN as OPT-350m; learned positions with offset 2):
 *   h = project_in(embed(ids)) + pos_embed(position + 2)
 *   per layer (pre-LN): h += out_proj(attn(q_proj(ln1(h)), k_proj(.), v_proj(.)))
 *                       h += fc2(act(fc1(ln2(h))))
 *   logits = lm_head(project_out(final_ln(h)))
 * Shapes: ids [B*T], h [B, T, C], q [B, T, H, D], k/v [B, T, H, D].
 */
import { add, attention, embedding, gelu, layernorm, relu, reshape } from '../autograd/index.js';
import { blockPrefix, tokenEmbeddingName, type OptConfig } from '../io/hf-config.js';
import { type Tensor, fromArray } from '../tensor/tensor.js';
import { KVCache } from './kv-cache.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import { forwardBlocks, LinearRegistry, type BlockContext, type CausalLM, type ForwardOptions } from './model.js';
import { outputHead, tokenEmbedding, type TokenEmbedding } from './token-embedding.js';

/** torch.nn.LayerNorm's default, which OPT uses. */
const LAYER_NORM_EPS = 1e-5;
/** OPT's learned positional embedding reserves the first two rows. */
const POSITION_OFFSET = 2;

interface Norm {
  w: Tensor;
  b: Tensor;
}

/** The norms of one block; its linears live in the registry under `${prefix}.${name}`. */
interface OptNorms {
  attnNorm: Norm;
  mlpNorm: Norm;
}

export class OptModel implements CausalLM {
  readonly numBlocks: number;
  private readonly norms: OptNorms[];
  private readonly tokens: TokenEmbedding;
  private readonly positions: Tensor;
  private readonly projectIn: LinearLayer | null;
  private readonly projectOut: LinearLayer | null;
  private readonly finalNorm: Norm | null;
  private readonly lmHead: LinearLayer;
  private readonly registry = new LinearRegistry();

  constructor(
    readonly config: OptConfig,
    private readonly weights: Map<string, Tensor>,
    /** Layers to use instead of dense ones (a packed checkpoint's quantized linears), by canonical name. */
    private readonly given: ReadonlyMap<string, LinearLayer> = new Map(),
  ) {
    const p = 'model.decoder';
    this.numBlocks = config.numLayers;
    this.tokens = tokenEmbedding(tokenEmbeddingName(config), weights, given);
    this.positions = this.tensor(`${p}.embed_positions.weight`);
    const projected = config.wordEmbedProjDim !== config.hiddenSize;
    this.projectIn = projected ? new DenseLinear(this.tensor(`${p}.project_in.weight`)) : null;
    this.projectOut = projected ? new DenseLinear(this.tensor(`${p}.project_out.weight`)) : null;
    this.finalNorm = config.doLayerNormBefore ? this.norm(`${p}.final_layer_norm`) : null;
    this.lmHead = outputHead(weights, given, this.tokens);
    this.norms = Array.from({ length: config.numLayers }, (_, i) => this.blockParameters(i));
  }

  private tensor(name: string): Tensor {
    const t = this.weights.get(name);
    if (t === undefined) throw new Error(`opt: missing tensor ${name}`);
    return t;
  }

  /** LayerNorm parameters; ones/zeros when the config has no elementwise affine. */
  private norm(prefix: string): Norm {
    if (this.config.layerNormElementwiseAffine) return { w: this.tensor(`${prefix}.weight`), b: this.tensor(`${prefix}.bias`) };
    const c = this.config.hiddenSize;
    const dtype = this.tokens.dtype;
    return { w: fromArray(new Array<number>(c).fill(1), [c], dtype), b: fromArray(new Array<number>(c).fill(0), [c], dtype) };
  }

  private blockParameters(i: number): OptNorms {
    const p = this.blockPrefix(i);
    this.registry.addBlock(this.config, i, (name) => this.tensor(name), this.given);
    return { attnNorm: this.norm(`${p}.self_attn_layer_norm`), mlpNorm: this.norm(`${p}.final_layer_norm`) };
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
    const { numLayers, numHeads, hiddenSize } = this.config;
    return new KVCache(numLayers, maxLength, numHeads, hiddenSize / numHeads, this.tokens.dtype);
  }

  forward(ids: Int32Array, options: ForwardOptions): Tensor {
    return forwardBlocks(this, ids, options);
  }

  embed(ids: Int32Array, { batch, cache }: ForwardOptions): { h: Tensor; ctx: BlockContext } {
    const seq = ids.length / batch;
    const start = cache?.length ?? 0;
    if (start + seq > this.config.maxPositions) {
      throw new RangeError(`opt: ${start + seq} positions exceed max_position_embeddings ${this.config.maxPositions}`);
    }
    const positionIds = new Int32Array(batch * seq).map((_, i) => start + (i % seq) + POSITION_OFFSET);
    let h = this.tokens.lookup(ids, [batch, seq]);
    if (this.projectIn !== null) h = this.projectIn.forward(h);
    h = add(h, embedding(this.positions, positionIds, [batch, seq]));
    return { h, ctx: { batch, seq, cache } };
  }

  block(i: number, h: Tensor, ctx: BlockContext): Tensor {
    const { attnNorm, mlpNorm } = this.norms[i];
    const linear = (name: string) => this.registry.get(`${this.blockPrefix(i)}.${name}`);
    h = this.residual(h, attnNorm, (x) => this.attention(i, linear, x, ctx));
    return this.residual(h, mlpNorm, (x) => linear('fc2').forward(this.activation(linear('fc1').forward(x))));
  }

  head(h: Tensor, ctx: BlockContext): Tensor {
    ctx.cache?.advance(ctx.seq);
    if (this.finalNorm !== null) h = layernorm(h, this.finalNorm.w, this.finalNorm.b, LAYER_NORM_EPS);
    if (this.projectOut !== null) h = this.projectOut.forward(h);
    return this.lmHead.forward(h);
  }

  /** Pre-LN: h + f(ln(h)); post-LN (OPT-350m): ln(h + f(h)). */
  private residual(h: Tensor, norm: Norm, f: (x: Tensor) => Tensor): Tensor {
    if (this.config.doLayerNormBefore) return add(h, f(layernorm(h, norm.w, norm.b, LAYER_NORM_EPS)));
    return layernorm(add(h, f(h)), norm.w, norm.b, LAYER_NORM_EPS);
  }

  private activation(x: Tensor): Tensor {
    return this.config.activation === 'relu' ? relu(x) : gelu(x);
  }

  private attention(index: number, linear: (name: string) => LinearLayer, x: Tensor, ctx: BlockContext): Tensor {
    const { numHeads, hiddenSize } = this.config;
    const { batch, seq, cache } = ctx;
    const headDim = hiddenSize / numHeads;
    const q = reshape(linear('self_attn.q_proj').forward(x), [batch, seq, numHeads, headDim]);
    let k = reshape(linear('self_attn.k_proj').forward(x), [batch, seq, numHeads, headDim]);
    let v = reshape(linear('self_attn.v_proj').forward(x), [batch, seq, numHeads, headDim]);
    if (cache !== undefined) ({ k, v } = cache.append(index, k, v));
    const a = attention(q, k, v, 1 / Math.sqrt(headDim));
    return linear('self_attn.out_proj').forward(reshape(a, [batch, seq, hiddenSize]));
  }
}
