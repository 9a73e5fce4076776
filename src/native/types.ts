/**
 * The kernel contract: one interface implemented twice, by the native addon (Float32Array only,
 * fast) and by the plain TypeScript reference in ref.ts (Float32Array or Float64Array, readable, the
 * oracle in tests and the float64 engine of gradient checks).
 *
 * Glossary (llm.c style): B batch, T time (Tq queries, Tk keys), H query heads, Hkv key/value heads,
 * D head dim, C channels, N rows, V vocab, M/N/K GEMM dims. All buffers are dense row-major.
 * Every kernel writes into caller-provided buffers; a kernel named *Backward that takes a dW/dB
 * argument ACCUMULATES into it (+=), while dx outputs are overwritten.
 */
import type { AddonBuildInfo } from './binding.js';

export type FloatArray = Float32Array | Float64Array;

/** C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]; op(A) is [M,K], op(B) is [K,N], C is [M,N]. */
export interface GemmDims {
  batch: number;
  m: number;
  n: number;
  k: number;
  /** A stored as [K,M] (true) or [M,K] (false). */
  transA: boolean;
  /** B stored as [N,K] (true) or [K,N] (false). */
  transB: boolean;
  alpha: number;
  beta: number;
  /** Element strides between batch items; 0 broadcasts one matrix over the batch. */
  strideA: number;
  strideB: number;
  strideC: number;
}

/** One plain product C = op(A) op(B) of [m,k] by [k,n] (no batch, no transposes, alpha 1, beta 0), `over` changed. */
export function gemmDims(m: number, n: number, k: number, over: Partial<GemmDims> = {}): GemmDims {
  return {
    batch: 1,
    m,
    n,
    k,
    transA: false,
    transB: false,
    alpha: 1,
    beta: 0,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    ...over,
  };
}

/**
 * Symmetric rank-k update C = alpha A^T A + beta C of the upper triangle: A is [K, N] (K rows of N features, e.g.
 * T tokens of one linear's input), C is [N, N], and only C[i, j] with i <= j is promised. The strictly lower
 * triangle is unspecified after the call (left as it was by the host kernels, written with the full product on the
 * GPU): a reader mirrors the upper triangle first (src/quant/hessian.ts).
 */
export interface SyrkDims {
  n: number;
  k: number;
  alpha: number;
  beta: number;
}

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
export type UnaryOp = 'relu' | 'gelu' | 'silu' | 'exp' | 'neg';

/**
 * Broadcasting layout of an elementwise op: `shape` is the output shape (rank <= 8); `stridesA`,
 * `stridesB` give, per output dim, the element stride of each input (0 on broadcast dims).
 */
export interface BroadcastDims {
  shape: number[];
  stridesA: number[];
  stridesB: number[];
}

export interface RowDims {
  rows: number;
  cols: number;
}

export interface NormDims extends RowDims {
  eps: number;
}

/** x, out: [B, T, H, D]; cos, sin: [T, D/2] (HF rotate-half layout, angle for pair i is pos * invFreq[i]). */
export interface RopeDims {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
}

/**
 * q: [B, Tq, H, D]; k, v: [B, Tk, Hkv, D]; out: [B, Tq, H, D]; probs: [B, H, Tq, Tk].
 * Query i may attend key j iff j <= i + (Tk - Tq) (causal with a KV-cache offset). H % Hkv == 0 and query
 * head h reads kv head floor(h / (H / Hkv)).
 */
export interface AttentionDims {
  batch: number;
  tq: number;
  tk: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

/**
 * A dropout mask from the counter-based generator (src/util/rng.ts): element i is kept iff
 * mix32(counterOf(state, i)) > threshold. With threshold = ceil(p 2^32) - 1 that is "draw i / 2^32 >= p",
 * exactly what p and n calls of Rng.next() decide, so every device draws the same mask from `state`.
 */
export interface DropoutDraw {
  state: number;
  threshold: number;
}

export interface CrossEntropyDims {
  rows: number;
  vocab: number;
  ignoreIndex: number;
}

export interface EmbeddingDims {
  /** number of ids */
  rows: number;
  dim: number;
  vocab: number;
}

/**
 * One AdamW step's scalars (torch.optim.AdamW): θ -= lr·λ·θ; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
 * θ -= lr (m / c1) / (sqrt(v / c2) + ε), with c1 = 1 - β1^t, c2 = 1 - β2^t and g = gradScale · grad
 * (global-norm clipping folded in; 1 when not clipped).
 */
export interface AdamWStepParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  c1: number;
  c2: number;
  gradScale: number;
}

/**
 * Calls `f` on each parameter of an `adamwMany` call in turn, after checking that the four lists are equally
 * long (a RangeError naming `kernel` otherwise): the per-tensor fallback of a backend with no multi-tensor kernel.
 */
export function eachAdamwTensor<A>(
  kernel: string,
  thetas: A[],
  gs: A[],
  ms: A[],
  vs: A[],
  f: (theta: A, g: A, m: A, v: A) => void,
): void {
  for (const [name, list] of [
    ['gs', gs],
    ['ms', ms],
    ['vs', vs],
  ] as const)
    if (list.length !== thetas.length)
      throw new RangeError(`${kernel}: ${name} has ${list.length} entries, expected ${thetas.length}`);
  thetas.forEach((theta, i) => f(theta, gs[i], ms[i], vs[i]));
}

export interface Kernels<A = FloatArray> {
  readonly name: 'native' | 'reference' | 'webgpu';

  gemm(a: A, b: A, c: A, d: GemmDims): void;
  /** Upper triangle of c [N, N] = alpha a^T a + beta c, a [K, N] (SyrkDims; half the multiply-adds of gemm). */
  syrk(a: A, c: A, d: SyrkDims): void;

  /** out = a (op) b with broadcasting. */
  binary(op: BinaryOp, a: A, b: A, out: A, d: BroadcastDims): void;
  /** out[i] = a[i] * alpha + beta (scalar affine), in place allowed. */
  affine(x: A, out: A, alpha: number, beta: number): void;
  /** Sums x (laid out as `shape`, reading with `stridesA`-style broadcast inverse) into out: out[map(i)] += x[i]. */
  sumTo(x: A, out: A, d: BroadcastDims): void;
  /** out[0] = scale * Σ x (accumulated in double on the host, in f32 tree order on the GPU). */
  sumInto(x: A, out: A, scale: number): void;
  /** out[0] += Σ x² (the global gradient norm's building block; accumulated as sumInto). */
  sumSquaresInto(x: A, out: A): void;
  /** out[i] = scale * x[0] for every i (the backward of a full reduction). */
  broadcastScalar(x: A, out: A, scale: number): void;
  /** out[i] = value. */
  fill(out: A, value: number): void;
  /** dst[dstOffset + i] = src[srcOffset + i] for i < n (src and dst distinct). */
  copy(src: A, srcOffset: number, dst: A, dstOffset: number, n: number): void;
  /** x[i] *= alpha * s[0], in place (scaling by a device-resident scalar, e.g. a loss's upstream gradient). */
  scaleBy(x: A, s: A, alpha: number): void;
  /** acc[i] += x[i] (gradient accumulation; acc and x distinct). */
  accumulate(acc: A, x: A): void;
  /** One AdamW update of θ from gradient g (read as g * gradScale), state m and v, in place. */
  adamw(theta: A, g: A, m: A, v: A, p: AdamWStepParams): void;
  /**
   * adamw on every (thetas[i], gs[i], ms[i], vs[i]) with the same step: an optimizer's whole step in one call (the
   * native engine shares one parallel region across all the tensors, however many and however small).
   */
  adamwMany(thetas: A[], gs: A[], ms: A[], vs: A[], p: AdamWStepParams): void;

  unaryForward(op: UnaryOp, x: A, out: A): void;
  /** dx = dy * f'(x) (x is the op's input). */
  unaryBackward(op: UnaryOp, x: A, dy: A, dx: A): void;

  /** out = x / sqrt(mean(x^2) + eps) * w; rstd[N] saved for backward. */
  rmsnormForward(x: A, w: A, out: A, rstd: A, d: NormDims): void;
  rmsnormBackward(x: A, w: A, rstd: A, dy: A, dx: A, dw: A, d: NormDims): void;

  /** out = (x - mean) * rstd * w + b (biased variance, as torch); mean[N], rstd[N] saved. */
  layernormForward(x: A, w: A, b: A, out: A, mean: A, rstd: A, d: NormDims): void;
  layernormBackward(x: A, w: A, mean: A, rstd: A, dy: A, dx: A, dw: A, db: A, d: NormDims): void;

  /** Row-wise softmax over the last dim. */
  softmaxForward(x: A, out: A, d: RowDims): void;
  /** dx = y * (dy - sum(dy * y)). */
  softmaxBackward(y: A, dy: A, dx: A, d: RowDims): void;

  /** Rotate-half RoPE; inverse=true applies the transposed rotation (the backward). */
  rope(x: A, out: A, cos: A, sin: A, d: RopeDims, inverse: boolean): void;

  /** Causal grouped-query attention; probs may be null when no backward will run. */
  attentionForward(q: A, k: A, v: A, out: A, probs: A | null, d: AttentionDims): void;
  /** dq, dk, dv are overwritten. */
  attentionBackward(q: A, k: A, v: A, probs: A, dout: A, dq: A, dk: A, dv: A, d: AttentionDims): void;

  /** losses[N] = lse - logit[target] (0 where target == ignoreIndex); lse[N] saved. */
  crossEntropyForward(logits: A, targets: Int32Array, losses: A, lse: A, d: CrossEntropyDims): void;
  /** dlogits = (softmax - onehot) * rowScale, zero rows for ignored targets (overwritten). */
  crossEntropyBackward(logits: A, targets: Int32Array, lse: A, rowScale: number, dlogits: A, d: CrossEntropyDims): void;

  /** out[i, :] = table[ids[i], :]; ids outside [0, V) throw. */
  embeddingForward(table: A, ids: Int32Array, out: A, d: EmbeddingDims): void;
  /** dTable[ids[i], :] += dy[i, :] (scatter-add). */
  embeddingBackward(dy: A, ids: Int32Array, dTable: A, d: EmbeddingDims): void;

  /** out = x * keep * scale with keep drawn as `draw` says (src/native/ref.ts dropoutMask); also the backward, on dy. */
  dropout(x: A, draw: DropoutDraw, scale: number, out: A): void;
}

/** Native-only extras (no reference beyond dense fp32 gemm, which is their oracle). */
export interface NativeExtras {
  /** The same gemm with A and B rounded to bf16 and fp32 accumulation (oneDNN matmul). */
  gemmBf16(a: Float32Array, b: Float32Array, c: Float32Array, d: GemmDims): void;
  /** True when oneDNN offers a bf16 matmul on this CPU (else gemmBf16 emulates: bf16 rounding + sgemm). */
  bf16Native(): boolean;
  /** Direct cblas_sgemm loop timed inside C++ (benchmark baseline): returns seconds per call. */
  benchSgemmDirect(m: number, n: number, k: number, iters: number): number;
  threads(): number;
  setThreads(n: number): void;
  /** "avx512" | "avx2" | "portable": the code path picked at load time. */
  cpuPath(): string;
  /** OpenBLAS's own thread count, which setThreads sets with OpenMP's. */
  blasThreads(): number;
  /** The compiler, OpenBLAS, oneDNN and OpenMP the addon was built with, and the CPU features it dispatches on. */
  buildInfo(): AddonBuildInfo;
}

export type NativeAddon = Kernels & NativeExtras;
