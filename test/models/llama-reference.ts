/**
 * A plain float64 Llama-architecture forward for the family tests, written from the Hugging Face modeling files
 * and independent of src/models/llama.ts and src/autograd: RMSNorm, rotate-half RoPE with the inverse frequencies
 * the test supplies (per forward, from the length it reaches), grouped-query causal attention over a key/value
 * cache of its own (keys stored rotated, as HF's DynamicCache keeps them), SwiGLU MLP, optional q/k/v/o biases and
 * Qwen3's per-head q/k RMSNorm. `run` appends tokens and returns their logits (of the first config.vocab
 * tokens), one row per token.
 */
import type { Tensor } from '../../src/tensor/tensor.js';

export interface ReferenceConfig {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  qkNorm: boolean;
  tied: boolean;
  /** The D/2 inverse frequencies of a forward whose last position is length - 1. */
  invFreq(length: number): Float64Array;
  /** Logits of the first `vocab` tokens only (the lm_head rows the comparison reads). */
  vocab: number;
}

type Weights = ReadonlyMap<string, Tensor>;

export class ReferenceLlama {
  private readonly keys: number[][][] = [];
  private readonly values: number[][][] = [];
  private readonly w: (name: string) => Float64Array | undefined;

  constructor(
    private readonly c: ReferenceConfig,
    weights: Weights,
  ) {
    this.w = (name) => {
      const t = weights.get(name);
      return t === undefined ? undefined : Float64Array.from(t.data as Float32Array);
    };
    for (let l = 0; l < c.layers; l++) {
      this.keys.push([]);
      this.values.push([]);
    }
  }

  private must(name: string): Float64Array {
    const t = this.w(name);
    if (t === undefined) throw new Error(`reference: no tensor ${name}`);
    return t;
  }

  /** W x + b for W [out, in] stored row-major. */
  private linear(name: string, x: number[]): number[] {
    const W = this.must(`${name}.weight`);
    const b = this.w(`${name}.bias`);
    const out = W.length / x.length;
    return Array.from({ length: out }, (_, o) => {
      let s = b?.[o] ?? 0;
      for (let i = 0; i < x.length; i++) s += W[o * x.length + i] * x[i];
      return s;
    });
  }

  private rms(x: number[], weight: Float64Array): number[] {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    const r = 1 / Math.sqrt(ms + this.c.eps);
    return x.map((v, i) => v * r * weight[i]);
  }

  /** Heads of x [n * D] as n vectors of D, each through `norm` when given. */
  private heads(x: number[], n: number, norm: Float64Array | undefined): number[][] {
    const D = this.c.headDim;
    return Array.from({ length: n }, (_, h) => {
      const v = x.slice(h * D, (h + 1) * D);
      return norm === undefined ? v : this.rms(v, norm);
    });
  }

  /** rotate_half: [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin], angle pos * invFreq[i]. */
  private rotate(v: number[], pos: number, invFreq: Float64Array): number[] {
    const half = v.length / 2;
    const y = v.slice();
    for (let i = 0; i < half; i++) {
      const [c, s] = [Math.cos(pos * invFreq[i]), Math.sin(pos * invFreq[i])];
      y[i] = v[i] * c - v[i + half] * s;
      y[i + half] = v[i + half] * c + v[i] * s;
    }
    return y;
  }

  /** Appends `ids` after the cached positions; returns their logits. */
  run(ids: number[]): number[][] {
    const c = this.c;
    const start = this.keys[0].length;
    const invFreq = c.invFreq(start + ids.length);
    const embed = this.must('model.embed_tokens.weight');
    let h = ids.map((id) => Array.from(embed.subarray(id * c.hidden, (id + 1) * c.hidden)));
    for (let l = 0; l < c.layers; l++) h = this.block(l, h, start, invFreq);
    const head = c.tied ? embed : this.must('lm_head.weight');
    const norm = this.must('model.norm.weight');
    return h.map((x) => {
      const y = this.rms(x, norm);
      return Array.from({ length: c.vocab }, (_, v) => {
        let s = 0;
        for (let i = 0; i < c.hidden; i++) s += head[v * c.hidden + i] * y[i];
        return s;
      });
    });
  }

  private block(l: number, h: number[][], start: number, invFreq: Float64Array): number[][] {
    const c = this.c;
    const p = `model.layers.${l}`;
    const qn = c.qkNorm ? this.must(`${p}.self_attn.q_norm.weight`) : undefined;
    const kn = c.qkNorm ? this.must(`${p}.self_attn.k_norm.weight`) : undefined;
    const xs = h.map((x) => this.rms(x, this.must(`${p}.input_layernorm.weight`)));
    const qs = xs.map((x, t) =>
      this.heads(this.linear(`${p}.self_attn.q_proj`, x), c.heads, qn).map((v) => this.rotate(v, start + t, invFreq)),
    );
    xs.forEach((x, t) => {
      this.keys[l].push(
        this.heads(this.linear(`${p}.self_attn.k_proj`, x), c.kvHeads, kn).flatMap((v) =>
          this.rotate(v, start + t, invFreq),
        ),
      );
      this.values[l].push(this.linear(`${p}.self_attn.v_proj`, x));
    });
    const group = c.heads / c.kvHeads;
    const D = c.headDim;
    const attended = qs.map((q, t) =>
      q.flatMap((qh, head) => {
        const kvh = Math.floor(head / group);
        const visible = start + t + 1;
        const scores = Array.from({ length: visible }, (_, j) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += qh[d] * this.keys[l][j][kvh * D + d];
          return s / Math.sqrt(D);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        return Array.from({ length: D }, (_, d) =>
          e.reduce((s, ej, j) => s + (ej / z) * this.values[l][j][kvh * D + d], 0),
        );
      }),
    );
    const mid = h.map((x, t) => {
      const o = this.linear(`${p}.self_attn.o_proj`, attended[t]);
      return x.map((v, i) => v + o[i]);
    });
    return mid.map((x) => {
      const y = this.rms(x, this.must(`${p}.post_attention_layernorm.weight`));
      const gate = this.linear(`${p}.mlp.gate_proj`, y);
      const up = this.linear(`${p}.mlp.up_proj`, y);
      const down = this.linear(
        `${p}.mlp.down_proj`,
        gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]),
      );
      return x.map((v, i) => v + down[i]);
    });
  }
}
