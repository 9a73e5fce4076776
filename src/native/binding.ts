/**
 * The whole native addon (build/Release/wct_native.node) as one typed contract: every function each binding
 * family exports (kernels/napi/addon.cc, optim.cc, packed.cc, quant.cc), with its positional arguments. Only
 * typed arrays and numbers cross; every buffer is validated in C++ (a bad call throws TypeError / RangeError
 * naming the function and the argument). The loader is ./addon.ts; the typed wrappers are ./addon.ts (kernels),
 * ./packed.ts (packed weights) and src/quant/quantizer.ts, src/quant/gptq.ts (quantizers).
 */
import type { FloatArray } from './types.js';

type F = FloatArray;

/** C[b] = alpha op(A[b]) op(B[b]) + beta C[b] (src/native/types.ts GemmDims), positionally. */
type GemmArgs = [
  a: F,
  b: F,
  c: F,
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha: number,
  beta: number,
  strideA: number,
  strideB: number,
  strideC: number,
];

/** The kernels exported by kernels/napi/addon.cc and optim.cc (argument order as in their comments). */
export interface KernelBinding {
  gemm(...args: GemmArgs): void;
  gemmBf16(...args: GemmArgs): void;
  /** Upper triangle of c [n, n] = alpha a^T a + beta c, a [k, n] (src/native/types.ts SyrkDims). */
  syrk(a: F, c: F, n: number, k: number, alpha: number, beta: number): void;
  binary(op: number, a: F, b: F, out: F, shape: number[], stridesA: number[], stridesB: number[]): void;
  affine(x: F, out: F, alpha: number, beta: number): void;
  sumTo(x: F, out: F, shape: number[], stridesOut: number[]): void;
  sumAll(x: F): number;
  unaryForward(op: number, x: F, out: F): void;
  unaryBackward(op: number, x: F, dy: F, dx: F): void;
  rmsnormForward(x: F, w: F, out: F, rstd: F, rows: number, cols: number, eps: number): void;
  rmsnormBackward(x: F, w: F, rstd: F, dy: F, dx: F, dw: F, rows: number, cols: number): void;
  layernormForward(x: F, w: F, b: F, out: F, mean: F, rstd: F, rows: number, cols: number, eps: number): void;
  layernormBackward(x: F, w: F, mean: F, rstd: F, dy: F, dx: F, dw: F, db: F, rows: number, cols: number): void;
  softmaxForward(x: F, out: F, rows: number, cols: number): void;
  softmaxBackward(y: F, dy: F, dx: F, rows: number, cols: number): void;
  rope(
    x: F,
    out: F,
    cos: F,
    sin: F,
    batch: number,
    seq: number,
    heads: number,
    headDim: number,
    inverse: boolean,
  ): void;
  attentionForward(
    q: F,
    k: F,
    v: F,
    out: F,
    probs: F | null,
    batch: number,
    tq: number,
    tk: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    scale: number,
  ): void;
  attentionBackward(
    q: F,
    k: F,
    v: F,
    probs: F,
    dout: F,
    dq: F,
    dk: F,
    dv: F,
    batch: number,
    tq: number,
    tk: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    scale: number,
  ): void;
  crossEntropyForward(
    logits: F,
    targets: Int32Array,
    losses: F,
    lse: F,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  crossEntropyBackward(
    logits: F,
    targets: Int32Array,
    lse: F,
    rowScale: number,
    dlogits: F,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  embeddingForward(table: F, ids: Int32Array, out: F, rows: number, dim: number, vocab: number): void;
  embeddingBackward(dy: F, ids: Int32Array, dTable: F, rows: number, dim: number, vocab: number): void;
  dropout(x: F, mask: Uint8Array, scale: number, out: F): void;
  /** kernels/napi/optim.cc: the fused AdamW update (AdamWStepParams in order), bit-identical to the reference's. */
  adamw(
    theta: F,
    g: F,
    m: F,
    v: F,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    c1: number,
    c2: number,
    gradScale: number,
  ): void;
  /** adamw on every (thetas[i], gs[i], ms[i], vs[i]) in one parallel region. */
  adamwMany(
    thetas: F[],
    gs: F[],
    ms: F[],
    vs: F[],
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    c1: number,
    c2: number,
    gradScale: number,
  ): void;
  /** Σ x[i]² in double, in an order fixed by x's length (not by the thread count). */
  sumSquares(x: F): number;
  bf16Native(): boolean;
  benchSgemmDirect(m: number, n: number, k: number, iters: number): number;
  threads(): number;
  setThreads(n: number): void;
  cpuPath(): string;
  /** OpenBLAS's thread count (setThreads sets it with OpenMP's). */
  blasThreads(): number;
  buildInfo(): AddonBuildInfo;
  /** Points the process's stderr at /dev/null; returns the fd that restoreStderr puts back (-1: unchanged). */
  muteStderr(): number;
  restoreStderr(fd: number): void;
}

/** What the addon was built with and the CPU features its ISA dispatch found (kernels/src/dispatch.cc). */
export interface AddonBuildInfo {
  /** e.g. "gcc 12.2.0". */
  compiler: string;
  /** openblas_get_config() and the core OpenBLAS picked, e.g. "OpenBLAS 0.3.21 ... USE_OPENMP ... (core Haswell)". */
  openblas: string;
  /** oneDNN's version and git hash, e.g. "2.6.3 (N/A)". */
  onednn: string;
  /** The OpenMP specification the compiler implements (_OPENMP, yyyymm), e.g. "201511". */
  openmp: string;
  /** The dispatch's features this CPU has, space-separated, e.g. "avx2 fma f16c". */
  cpuFeatures: string;
}

/** The layout constants the addon was built with (kernels/include/wct_packed.h). */
export interface PackedLayoutConstants {
  blockCodes: number;
  bits: number[];
  version: number;
}

/**
 * A packed weight as positional arguments: rows, cols, bits, groupSize, qweight, scales, zeros, perm, weakIdx,
 * weak, then its CSR outliers outlierRowPtr, outlierColIdx, outlierValues (all three null when it has none).
 */
export type PackedArgs = [
  rows: number,
  cols: number,
  bits: number,
  groupSize: number,
  qweight: Uint8Array,
  scales: Float32Array,
  zeros: Uint8Array,
  perm: Int32Array | null,
  weakIdx: Int32Array,
  weak: Float32Array,
  outlierRowPtr: Int32Array | null,
  outlierColIdx: Int32Array | null,
  outlierValues: Float32Array | null,
];

/** The packed-weight functions of the addon (kernels/napi/packed.cc). */
export interface PackedBinding {
  packedLayout(): PackedLayoutConstants;
  packCodes(codes: Uint8Array, qweight: Uint8Array, rows: number, cols: number, bits: number): void;
  unpackCodes(qweight: Uint8Array, codes: Uint8Array, rows: number, cols: number, bits: number): void;
  packedDequantize(...args: [...PackedArgs, out: Float32Array]): void;
  packedMatmul(...args: [...PackedArgs, x: Float32Array, m: number, y: Float32Array]): void;
  packedMatmulT(...args: [...PackedArgs, dy: Float32Array, m: number, dx: Float32Array]): void;
  packedWeakGrad(...args: [...PackedArgs, dy: Float32Array, x: Float32Array, m: number, dweak: Float32Array]): void;
  packedOutlierGrad(
    ...args: [...PackedArgs, dy: Float32Array, x: Float32Array, m: number, dvalues: Float32Array]
  ): void;
  benchReadBandwidth(bytes: number, iters: number): number;
}

/** The quantizer functions of the addon (kernels/napi/quant.cc), positional as in its comments. */
export interface QuantBinding {
  quantFindParams(
    w: Float32Array,
    rows: number,
    cols: number,
    ld: number,
    bits: number,
    tuning: number,
    grid: number,
    scale: Float32Array,
    zero: Float32Array,
  ): void;
  quantFake(
    w: Float32Array,
    rows: number,
    cols: number,
    scale: Float32Array,
    zero: Float32Array,
    bits: number,
    out: Float32Array,
    codes: Uint8Array | null,
  ): void;
  gptq(
    w: Float32Array,
    h: Float32Array,
    rows: number,
    cols: number,
    nQuant: number,
    bits: number,
    tuning: number,
    groupSize: number,
    blockSize: number,
    percdamp: number,
    codes: Uint8Array,
    scale: Float32Array,
    zero: Float32Array,
    fixed: Uint8Array | null,
  ): GptqCallResult;
}

/** What the gptq binding returns: the reference's loss and where the call's time went (kernels/include/wct_quant.h). */
export interface GptqCallResult {
  loss: number;
  /** The (scale, zero) searches, seconds. */
  paramsS: number;
  /** Damping, the Cholesky factorizations and the inverse, seconds. */
  hinvS: number;
  /** The column sweeps inside the blocks, seconds. */
  sweepS: number;
  /** The later columns' sgemm updates, seconds. */
  updateS: number;
}

/** Everything the addon module exports. */
export type AddonBinding = KernelBinding & PackedBinding & QuantBinding;
