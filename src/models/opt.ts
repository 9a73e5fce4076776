/**
 * OPT forward pass (pre-LN as OPT-125m..66b, post-LN as OPT-350m; learned positions with offset 2):
 *   h = project_in(embed(ids)) + pos_embed(position + 2)
 *   per layer (pre-LN): h += out_proj(attn(q_proj(ln1(h)), k_proj(.), v_proj(.)))
 *                       h += fc2(act(fc1(ln2(h))))
 *   logits = lm_head(project_out(final_ln(h)))
 * Shapes: ids [B*T], h [B, T, C], q [B, T, H, D], k/v [B, T, H, D].
 */
import { add, attention, embedding, gelu, layernorm, relu, reshape } from '../autograd/index.js';
import type { OptConfig } from '../io/hf-config.js';
import { Tensor, fromArray } from '../tensor/tensor.js';
import { KVCache } from './kv-cache.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import type { CausalLM, ForwardOptions } from './model.js';

/** torch.nn.LayerNorm's default, which OPT uses. */
const LAYER_NORM_EPS = 1e-5;
/** OPT's learned positional embedding reserves the first two rows. */
const POSITION_OFFSET = 2;

interface Norm {
  w: Tensor;
  b: Tensor;
}

interface OptLayer {
  attnNorm: Norm;
  mlpNorm: Norm;
  q: LinearLayer;
  k: LinearLayer;
  v: LinearLayer;
  out: LinearLayer;
  fc1: LinearLayer;
  fc2: LinearLayer;
}

export class OptModel implements CausalLM {
  private readonly layers: OptLayer[];
  private readonly embed: Tensor;
  private readonly positions: Tensor;
  private readonly projectIn: LinearLayer | null;
  private readonly projectOut: LinearLayer | null;
  private readonly finalNorm: Norm | null;
  private readonly lmHead: LinearLayer;
  private readonly linearMap = new Map<string, LinearLayer>();

  constructor(
    readonly config: OptConfig,
    private readonly weights: Map<string, Tensor>,
  ) {
    const p = 'model.decoder';
    this.embed = this.tensor(`${p}.embed_tokens.weight`);
    this.positions = this.tensor(`${p}.embed_positions.weight`);
    const projected = config.wordEmbedProjDim !== config.hiddenSize;
    this.projectIn = projected ? new DenseLinear(this.tensor(`${p}.project_in.weight`)) : null;
    this.projectOut = projected ? new DenseLinear(this.tensor(`${p}.project_out.weight`)) : null;
    this.finalNorm = config.doLayerNormBefore ? this.norm(`${p}.final_layer_norm`) : null;
    this.lmHead = new DenseLinear(weights.get('lm_head.weight') ?? this.embed);
    this.layers = Array.from({ length: config.numLayers }, (_, i) => this.layer(`${p}.layers.${i}`));
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
    const dtype = this.embed.dtype;
    return { w: fromArray(new Array<number>(c).fill(1), [c], dtype), b: fromArray(new Array<number>(c).fill(0), [c], dtype) };
  }

  private dense(prefix: string): LinearLayer {
    const bias = this.config.enableBias ? this.tensor(`${prefix}.bias`) : null;
    const layer = new DenseLinear(this.tensor(`${prefix}.weight`), bias);
    this.linearMap.set(prefix, layer);
    return layer;
  }

  private layer(p: string): OptLayer {
    return {
      attnNorm: this.norm(`${p}.self_attn_layer_norm`),
      mlpNorm: this.norm(`${p}.final_layer_norm`),
      q: this.dense(`${p}.self_attn.q_proj`),
      k: this.dense(`${p}.self_attn.k_proj`),
      v: this.dense(`${p}.self_attn.v_proj`),
      out: this.dense(`${p}.self_attn.out_proj`),
      fc1: this.dense(`${p}.fc1`),
      fc2: this.dense(`${p}.fc2`),
    };
  }

  parameters(): Map<string, Tensor> {
    return this.weights;
  }

  linears(): Map<string, LinearLayer> {
    return this.linearMap;
  }

  newCache(maxLength: number): KVCache {
    const { numLayers, numHeads, hiddenSize } = this.config;
    return new KVCache(numLayers, maxLength, numHeads, hiddenSize / numHeads, this.embed.data);
  }

  forward(ids: Int32Array, { batch, cache }: ForwardOptions): Tensor {
    const seq = ids.length / batch;
    const start = cache?.length ?? 0;
    if (start + seq > this.config.maxPositions) {
      throw new RangeError(`opt: ${start + seq} positions exceed max_position_embeddings ${this.config.maxPositions}`);
    }
    const positionIds = new Int32Array(batch * seq).map((_, i) => start + (i % seq) + POSITION_OFFSET);
    let h = embedding(this.embed, ids, [batch, seq]);
    if (this.projectIn !== null) h = this.projectIn.forward(h);
    h = add(h, embedding(this.positions, positionIds, [batch, seq]));
    this.layers.forEach((layer, i) => {
      h = this.residual(h, layer.attnNorm, (x) => this.attentionBlock(layer, i, x, batch, seq, cache));
      h = this.residual(h, layer.mlpNorm, (x) => layer.fc2.forward(this.activation(layer.fc1.forward(x))));
    });
    cache?.advance(seq);
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

  private attentionBlock(layer: OptLayer, index: number, x: Tensor, batch: number, seq: number, cache: KVCache | undefined): Tensor {
    const { numHeads, hiddenSize } = this.config;
    const headDim = hiddenSize / numHeads;
    const q = reshape(layer.q.forward(x), [batch, seq, numHeads, headDim]);
    let k = reshape(layer.k.forward(x), [batch, seq, numHeads, headDim]);
    let v = reshape(layer.v.forward(x), [batch, seq, numHeads, headDim]);
    if (cache !== undefined) ({ k, v } = cache.append(index, k, v));
    const a = attention(q, k, v, 1 / Math.sqrt(headDim));
    return layer.out.forward(reshape(a, [batch, seq, hiddenSize]));
  }
}
