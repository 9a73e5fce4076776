/**
 * OPT forward pass (pre-LN as OPT-125m..66b, post-LN as OPT-350m; learned positions with offset 2):
 *   h = project_in(embed(ids)) + pos_embed(position + 2)
 *   per layer (pre-LN): h += out_proj(attn(q_proj(ln1(h)), k_proj(.), v_proj(.)))
 *                       h += fc2(act(fc1(ln2(h))))
 *   logits = lm_head(project_out(final_ln(h)))
 * Shapes: ids [B*T], h [B, T, C], q [B, T, H, D], k/v [B, T, H, D].
 */
import { add, attention, embedding, gelu, layernorm, relu, reshape } from '../autograd/index.js';
import { type Tensor, fromArray } from '../tensor/tensor.js';
import type { TensorNames } from './families/spec.js';
import { KVCache } from './kv-cache.js';
import { moveModel } from './move.js';
import type { GpuContext } from '../gpu/array.js';
import { DenseLinear, type LinearLayer } from './linear.js';
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

/** torch.nn.LayerNorm's default, which OPT uses. */
const LAYER_NORM_EPS = 1e-5;

export interface OptConfig extends ModelConfig {
  family: 'opt';
  ffnDim: number;
  numHeads: number;
  /** max_position_embeddings; the position table has positionOffset more rows. */
  maxPositions: number;
  wordEmbedProjDim: number;
  doLayerNormBefore: boolean;
  activation: 'relu' | 'gelu';
  enableBias: boolean;
  layerNormElementwiseAffine: boolean;
  padTokenId: number | null;
}

/** The linears of an OPT block by role. */
export type OptLinear = 'q' | 'k' | 'v' | 'out' | 'fc1' | 'fc2';

/** What the family spec (src/models/families/opt.ts) tells the forward pass: tensor names and block linears. */
export interface OptLayout {
  names: TensorNames;
  /** Each role's linear, by name relative to the block prefix. */
  linearNames: Record<OptLinear, string>;
  /** Decoder-level module names. */
  positions: string;
  projectIn: string;
  projectOut: string;
  finalNorm: string;
  /** OPT's learned positional embedding reserves its first rows (2). */
  positionOffset: number;
  blockLinears: BlockLinear[];
}

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
    private readonly given: ReadonlyMap<string, LinearLayer>,
    private readonly layout: OptLayout,
  ) {
    this.numBlocks = config.numLayers;
    this.tokens = tokenEmbedding(layout.names.tokenEmbedding, weights, given);
    this.positions = this.tensor(`${layout.positions}.weight`);
    const projected = config.wordEmbedProjDim !== config.hiddenSize;
    this.projectIn = projected ? new DenseLinear(this.tensor(`${layout.projectIn}.weight`)) : null;
    this.projectOut = projected ? new DenseLinear(this.tensor(`${layout.projectOut}.weight`)) : null;
    this.finalNorm = config.doLayerNormBefore ? this.layerNorm(layout.finalNorm) : null;
    this.lmHead = outputHead(layout.names.lmHead, weights, given, this.tokens);
    this.norms = Array.from({ length: config.numLayers }, (_, i) => this.blockParameters(i));
  }

  private tensor(name: string): Tensor {
    const t = this.weights.get(name);
    if (t === undefined) throw new Error(`opt: missing tensor ${name}`);
    return t;
  }

  /** LayerNorm parameters; ones/zeros when the config has no elementwise affine. */
  private layerNorm(prefix: string): Norm {
    if (this.config.layerNormElementwiseAffine)
      return { w: this.tensor(`${prefix}.weight`), b: this.tensor(`${prefix}.bias`) };
    const c = this.config.hiddenSize;
    const dtype = this.tokens.dtype;
    return {
      w: fromArray(new Array<number>(c).fill(1), [c], dtype),
      b: fromArray(new Array<number>(c).fill(0), [c], dtype),
    };
  }

  private blockParameters(i: number): OptNorms {
    const p = this.blockPrefix(i);
    this.registry.addBlock(p, this.layout.blockLinears, (name) => this.tensor(name), this.given);
    const [attnNorm, mlpNorm] = this.layout.names.blockNorms;
    return { attnNorm: this.layerNorm(`${p}.${attnNorm}`), mlpNorm: this.layerNorm(`${p}.${mlpNorm}`) };
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
    const { numLayers, numHeads, hiddenSize } = this.config;
    return new KVCache(numLayers, maxLength, numHeads, hiddenSize / numHeads, this.tokens.dtype);
  }

  forward(ids: Int32Array, options: ForwardOptions): Tensor {
    return forwardBlocks(this, ids, options);
  }

  embed(ids: Int32Array, { batch, cache }: ForwardOptions): { h: Tensor; ctx: BlockContext } {
    const seq = ids.length / batch;
    const start = cache?.length ?? 0;
    checkPositions(this.config, start + seq, 'sequence length');
    const positionIds = new Int32Array(batch * seq).map((_, i) => start + (i % seq) + this.layout.positionOffset);
    let h = this.tokens.lookup(ids, [batch, seq]);
    if (this.projectIn !== null) h = this.projectIn.forward(h);
    h = add(h, embedding(this.positions, positionIds, [batch, seq]));
    return { h, ctx: { batch, seq, cache } };
  }

  block(i: number, h: Tensor, ctx: BlockContext): Tensor {
    const { attnNorm, mlpNorm } = this.norms[i];
    h = this.residual(h, attnNorm, (x) => this.attention(i, x, ctx));
    return this.residual(h, mlpNorm, (x) => this.mlp(i, x));
  }

  blockPart(i: number, part: BlockPart, x: Tensor, ctx: BlockContext): Tensor {
    return part === 'attention' ? this.attention(i, x, ctx) : this.mlp(i, x);
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

  private linear(i: number, role: OptLinear): LinearLayer {
    return this.registry.get(`${this.blockPrefix(i)}.${this.layout.linearNames[role]}`);
  }

  /** fc2(act(fc1(x))) */
  private mlp(i: number, x: Tensor): Tensor {
    return this.linear(i, 'fc2').forward(this.activation(this.linear(i, 'fc1').forward(x)));
  }

  private attention(index: number, x: Tensor, ctx: BlockContext): Tensor {
    const linear = (role: OptLinear) => this.linear(index, role);
    const { numHeads, hiddenSize } = this.config;
    const { batch, seq, cache } = ctx;
    const headDim = hiddenSize / numHeads;
    const q = reshape(linear('q').forward(x), [batch, seq, numHeads, headDim]);
    let k = reshape(linear('k').forward(x), [batch, seq, numHeads, headDim]);
    let v = reshape(linear('v').forward(x), [batch, seq, numHeads, headDim]);
    if (cache !== undefined) ({ k, v } = cache.append(index, k, v));
    const a = attention(q, k, v, 1 / Math.sqrt(headDim));
    return linear('out').forward(reshape(a, [batch, seq, hiddenSize]));
  }
}
