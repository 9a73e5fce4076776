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

export interface Kernels {
  readonly name: 'native' | 'reference';

  gemm(a: FloatArray, b: FloatArray, c: FloatArray, d: GemmDims): void;

  /** out = a (op) b with broadcasting. */
  binary(op: BinaryOp, a: FloatArray, b: FloatArray, out: FloatArray, d: BroadcastDims): void;
  /** out[i] = a[i] * alpha + beta (scalar affine), in place allowed. */
  affine(x: FloatArray, out: FloatArray, alpha: number, beta: number): void;
  /** Sums x (laid out as `shape`, reading with `stridesA`-style broadcast inverse) into out: out[map(i)] += x[i]. */
  sumTo(x: FloatArray, out: FloatArray, d: BroadcastDims): void;
  /** Sum of all elements, accumulated in double. */
  sumAll(x: FloatArray): number;

  unaryForward(op: UnaryOp, x: FloatArray, out: FloatArray): void;
  /** dx = dy * f'(x) (x is the op's input). */
  unaryBackward(op: UnaryOp, x: FloatArray, dy: FloatArray, dx: FloatArray): void;

  /** out = x / sqrt(mean(x^2) + eps) * w; rstd[N] saved for backward. */
  rmsnormForward(x: FloatArray, w: FloatArray, out: FloatArray, rstd: FloatArray, d: NormDims): void;
  rmsnormBackward(
    x: FloatArray,
    w: FloatArray,
    rstd: FloatArray,
    dy: FloatArray,
    dx: FloatArray,
    dw: FloatArray,
    d: NormDims,
  ): void;

  /** out = (x - mean) * rstd * w + b (biased variance, as torch); mean[N], rstd[N] saved. */
  layernormForward(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray,
    out: FloatArray,
    mean: FloatArray,
    rstd: FloatArray,
    d: NormDims,
  ): void;
  layernormBackward(
    x: FloatArray,
    w: FloatArray,
    mean: FloatArray,
    rstd: FloatArray,
    dy: FloatArray,
    dx: FloatArray,
    dw: FloatArray,
    db: FloatArray,
    d: NormDims,
  ): void;

  /** Row-wise softmax over the last dim. */
  softmaxForward(x: FloatArray, out: FloatArray, d: RowDims): void;
  /** dx = y * (dy - sum(dy * y)). */
  softmaxBackward(y: FloatArray, dy: FloatArray, dx: FloatArray, d: RowDims): void;

  /** Rotate-half RoPE; inverse=true applies the transposed rotation (the backward). */
  rope(x: FloatArray, out: FloatArray, cos: FloatArray, sin: FloatArray, d: RopeDims, inverse: boolean): void;

  /** Causal grouped-query attention; probs may be null when no backward will run. */
  attentionForward(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    out: FloatArray,
    probs: FloatArray | null,
    d: AttentionDims,
  ): void;
  /** dq, dk, dv are overwritten. */
  attentionBackward(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    probs: FloatArray,
    dout: FloatArray,
    dq: FloatArray,
    dk: FloatArray,
    dv: FloatArray,
    d: AttentionDims,
  ): void;

  /** losses[N] = lse - logit[target] (0 where target == ignoreIndex); lse[N] saved. */
  crossEntropyForward(
    logits: FloatArray,
    targets: Int32Array,
    losses: FloatArray,
    lse: FloatArray,
    d: CrossEntropyDims,
  ): void;
  /** dlogits = (softmax - onehot) * rowScale, zero rows for ignored targets (overwritten). */
  crossEntropyBackward(
    logits: FloatArray,
    targets: Int32Array,
    lse: FloatArray,
    rowScale: number,
    dlogits: FloatArray,
    d: CrossEntropyDims,
  ): void;

  /** out[i, :] = table[ids[i], :]; ids outside [0, V) throw. */
  embeddingForward(table: FloatArray, ids: Int32Array, out: FloatArray, d: EmbeddingDims): void;
  /** dTable[ids[i], :] += dy[i, :] (scatter-add). */
  embeddingBackward(dy: FloatArray, ids: Int32Array, dTable: FloatArray, d: EmbeddingDims): void;

  /** out = x * mask * scale (mask is 0/1 bytes); also the backward, on dy. */
  dropout(x: FloatArray, mask: Uint8Array, scale: number, out: FloatArray): void;
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
