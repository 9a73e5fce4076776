/**
 * The device copy of a packed low-bit weight (src/native/packed.ts, kernels/PACKED.md) and the WGSL every packed
 * kernel shares to decode it.
 *
 * Device layout (the host format is unchanged; this is what packedToGpu writes):
 *   qweight: u32 words, row r at word r * rowWords. The host row's bytes are copied as they are (the same
 *     little-endian bit stream: packed column k in bits [k*b, (k+1)*b) of the row), then zero-padded to a whole
 *     number of *units*: one word for b = 2, 4, 8 (16, 8, 4 codes) and three words for b = 3 (32 codes, the
 *     smallest run of 3-bit codes that ends on a word). A 3-bit code may straddle two words of its unit.
 *   scales: [N, ceil(K/G)] as a GpuArray: f16 half storage (src/gpu/half.ts) when every host value is exact in
 *     f16, which a packed checkpoint's F16 scales always are (kernels/PACKED.md), else f32. Scales are never
 *     trained, so f16 changes nothing but the memory.
 *   zeros: the host u8 bytes, four to a u32 word.
 *   index: one i32 buffer [perm (K) | inverse perm (K) | weak slot (K) | weakIdx (nOut)]: perm and its inverse
 *     are the identity when the host perm is null; weak slot j is the position of input column j in weakIdx,
 *     or -1 (so a kernel walking input columns finds a weak column without searching).
 *   weak: [N, nOut] as a GpuArray, read by every call (never cached). Frozen weak columns (evaluation, generation,
 *     LoRA over a packed base: packedToGpu's `frozenWeak`) are f16 under the same exactness rule as the scales.
 *     Trainable ones stay f32: Weak Column Tuning makes this array the trainable tensor's storage (its f32 master
 *     values, updated by AdamW) and may replace it with another array of the same length. Frozen f16 columns that
 *     become trainable after the upload are widened to f32 first (thawWeak; exact).
 *   outliers (GWQ-style sparse elements, src/native/packed.ts PackedOutliers; only when nnz > 0): appended to the
 *     index buffer, after weakIdx, at oBase = 3 K + nOut:
 *       rowPtr (N + 1) | colIdx (nnz) | rowOf (nnz: the CSR row of each entry) |
 *       colPtr (K + 1) | rowIdx (nnz) | cscPos (nnz: the CSR position of each CSC entry)
 *     the CSR as on the host, and its CSC transpose built here at upload (entries of a column in ascending row,
 *     so the dx gather is deterministic and needs no atomics). The values, `outlierValues` [nnz], are f32 always
 *     (trainable in outlier tuning, like trainable weak columns), read at every call, and may be replaced by an
 *     array of the same length. The kernels add the sparse part after (or, in the GEMV, beside) the packed part:
 *     src/gpu/packed-outliers.ts.
 * Each kernel is built per pair of read paths (scales, weak: f32 / f16 as u32 words / native f16), which only
 * changes the load functions S_at and WK_at of decodeWgsl.
 */
import { OptionError } from '../errors.js';
import { type GpuArray, type GpuContext, keep, release } from './array.js';
import { type GpuKernel, params } from './dispatch.js';
import { enableWgsl, exactHalf, formatOf, loadWgsl, type ReadPath, readPath } from './half.js';
import { widen } from './widen.js';
import {
  outlierCount,
  type PackedBits,
  packedGroups,
  packedRowBytes,
  type PackedWeight,
  validatePacked,
} from '../native/packed.js';

/** Words of one unit of codes: the smallest run of whole codes that ends on a word. */
export const unitWords = (bits: PackedBits): number => (bits === 3 ? 3 : 1);
/** Codes in one unit. */
export const unitCodes = (bits: PackedBits): number => (32 * unitWords(bits)) / bits;

export class GpuPackedWeight {
  released = false;
  constructor(
    readonly ctx: GpuContext,
    readonly rows: number,
    readonly cols: number,
    readonly bits: PackedBits,
    readonly groupSize: number,
    /** Host copy of the weak columns' input indices (sorted), for shape checks. */
    readonly weakIdx: Int32Array,
    /** u32 words [rows, rowWords]. */
    readonly qweight: GPUBuffer,
    readonly rowWords: number,
    /** [rows, groups], f16 or f32 (see the top of this file). */
    readonly scales: GpuArray,
    /** u8 zero points, four to a u32 word. */
    readonly zeros: GPUBuffer,
    /** i32 [perm | inverse perm | weak slot | weakIdx] (see the top of this file). */
    readonly index: GPUBuffer,
    readonly hasPerm: boolean,
    /** [rows, nOut]: the weak columns, read on every call (f16 when frozen, f32 when trainable); may be replaced
     * by an array of the same length. */
    public weak: GpuArray,
    /** The weak array packedToGpu (or thawWeak) made: releasePacked frees this one, not a replacement the caller
     * owns. */
    public ownWeak: GpuArray,
    /** The number of sparse outliers (0: none; the index buffer then holds no CSR). */
    readonly nnz: number = 0,
    /** [nnz] f32: the outliers' values, read on every call; may be replaced by an f32 array of the same length
     * (outlier tuning makes it a tensor's storage). null when nnz = 0. */
    public outlierValues: GpuArray | null = null,
    /** The values array packedToGpu made: releasePacked frees this one, not a replacement the caller owns. */
    readonly ownOutlierValues: GpuArray | null = null,
  ) {}

  get nOut(): number {
    return this.weakIdx.length;
  }

  get groups(): number {
    return packedGroups(this.cols, this.groupSize);
  }

  /** How the kernels read the scales and the weak columns on this device. */
  get reads(): [ReadPath, ReadPath] {
    const { device } = this.ctx;
    return [readPath(device, this.scales.format), readPath(device, this.weak.format)];
  }
}

function rowWordsOf(cols: number, bits: PackedBits): number {
  const uw = unitWords(bits);
  return Math.ceil(Math.ceil(packedRowBytes(cols, bits) / 4) / uw) * uw;
}

function deviceCodes(w: PackedWeight, rowWords: number): Uint8Array {
  const rowBytes = packedRowBytes(w.cols, w.bits);
  if (rowBytes === rowWords * 4) return w.qweight;
  const out = new Uint8Array(w.rows * rowWords * 4);
  for (let r = 0; r < w.rows; r++) out.set(w.qweight.subarray(r * rowBytes, (r + 1) * rowBytes), r * rowWords * 4);
  return out;
}

function indexOf(w: PackedWeight): Int32Array {
  const k = w.cols;
  const nnz = outlierCount(w);
  const idx = new Int32Array(3 * k + w.weakIdx.length + (nnz > 0 ? w.rows + k + 2 + 4 * nnz : 0));
  for (let c = 0; c < k; c++) {
    const j = w.perm === null ? c : w.perm[c];
    idx[c] = j;
    idx[k + j] = c;
    idx[2 * k + c] = -1;
  }
  w.weakIdx.forEach((j, t) => {
    idx[2 * k + j] = t;
    idx[3 * k + t] = j;
  });
  if (nnz > 0) outlierIndex(w, idx.subarray(3 * k + w.weakIdx.length));
  return idx;
}

/**
 * The outliers' part of the index (see the top of this file): the CSR's rowPtr and colIdx, the row of each CSR
 * entry, and the CSC transpose (colPtr, rowIdx, cscPos) by a counting sort over the columns, stable in the CSR
 * order, so each column's entries are in ascending row.
 */
function outlierIndex(w: PackedWeight, out: Int32Array): void {
  const o = w.outliers!;
  const [n, k, nnz] = [w.rows, w.cols, o.colIdx.length];
  const rowPtr = out.subarray(0, n + 1);
  const colIdx = out.subarray(n + 1, n + 1 + nnz);
  const rowOf = out.subarray(n + 1 + nnz, n + 1 + 2 * nnz);
  const colPtr = out.subarray(n + 1 + 2 * nnz, n + k + 2 + 2 * nnz);
  const rowIdx = out.subarray(n + k + 2 + 2 * nnz, n + k + 2 + 3 * nnz);
  const cscPos = out.subarray(n + k + 2 + 3 * nnz, n + k + 2 + 4 * nnz);
  rowPtr.set(o.rowPtr);
  colIdx.set(o.colIdx);
  for (let r = 0; r < n; r++) rowOf.fill(r, o.rowPtr[r], o.rowPtr[r + 1]);
  for (const j of o.colIdx) colPtr[j + 1]++;
  for (let j = 0; j < k; j++) colPtr[j + 1] += colPtr[j];
  const next = colPtr.slice(0, k);
  for (let p = 0; p < nnz; p++) {
    const q = next[o.colIdx[p]]++;
    rowIdx[q] = rowOf[p];
    cscPos[q] = p;
  }
}

function checkBinding(ctx: GpuContext, what: string, bytes: number): void {
  const max = ctx.bindingLimit;
  if (bytes > max) {
    throw new OptionError(
      '--device',
      `packedToGpu: ${what} takes ${bytes} bytes, over the GPU's storage binding limit of ${max} ` +
        '(a packed weight is not split across bindings; its batch arrays are): use the CPU',
    );
  }
}

/** `values` on the device: f16 half storage when `half` and every value is exact in f16, else f32. Kept. */
function uploadFrozen(ctx: GpuContext, values: Float32Array, half: boolean, label: string): GpuArray {
  const bits = half ? exactHalf(values, 'f16') : null;
  return keep(bits === null ? ctx.upload(values, label) : ctx.uploadHalf(bits, 'f16', label));
}

export interface PackedUpload {
  /** The weak columns are frozen (not trained): stored in f16 when exact. Default false (f32, trainable). */
  frozenWeak?: boolean;
}

/**
 * Uploads a packed weight (validated first, as loaders do). The result is persistent: call it outside any
 * scope, or keep() is done for you; free it with releasePacked.
 */
export function packedToGpu(ctx: GpuContext, w: PackedWeight, options: PackedUpload = {}): GpuPackedWeight {
  validatePacked(w, 'packedToGpu');
  const nnz = outlierCount(w);
  const rowWords = rowWordsOf(w.cols, w.bits);
  const codes = deviceCodes(w, rowWords);
  checkBinding(ctx, 'qweight', codes.byteLength);
  const index = indexOf(w);
  checkBinding(ctx, 'the index', index.byteLength);
  const weak = uploadFrozen(ctx, w.weak, options.frozenWeak === true, 'packed weak');
  if (nnz > 0) checkBinding(ctx, "the outliers' values", 4 * nnz);
  const values = nnz > 0 ? keep(ctx.upload(Float32Array.from(w.outliers!.values), 'packed outliers')) : null;
  return new GpuPackedWeight(
    ctx,
    w.rows,
    w.cols,
    w.bits,
    w.groupSize,
    Int32Array.from(w.weakIdx),
    ctx.uploadRaw(codes, 'packed qweight'),
    rowWords,
    uploadFrozen(ctx, w.scales, true, 'packed scales'),
    ctx.uploadRaw(w.zeros, 'packed zeros'),
    ctx.uploadRaw(index, 'packed index'),
    w.perm !== null,
    weak,
    weak,
    nnz,
    values,
    values,
  );
}

/**
 * The weak columns as f32, for training: f16 ones (uploaded frozen) are replaced by an exact f32 copy and the f16
 * array is freed. Returns the (new) weak array.
 */
export function thawWeak(g: GpuPackedWeight): GpuArray {
  if (g.weak.format === 'f32') return g.weak;
  if (g.weak !== g.ownWeak) throw new Error('thawWeak: the weak columns were replaced by an array the caller owns');
  const w = keep(widen(g.weak));
  release(g.ownWeak);
  g.ownWeak = w;
  g.weak = w;
  return w;
}

/** Returns the weight's buffers to the pool; it refuses to be used afterwards. */
export function releasePacked(g: GpuPackedWeight): void {
  if (g.released) return;
  g.released = true;
  g.ctx.recycle(g.qweight);
  g.ctx.recycle(g.zeros);
  g.ctx.recycle(g.index);
  release(g.scales);
  release(g.ownWeak);
  if (g.ownOutlierValues !== null) release(g.ownOutlierValues);
}

/** The uniform every packed kernel reads (PARAMS_WGSL), with `m` the batch rows of the call. */
export function packedParams(g: GpuPackedWeight, m: number): ArrayBuffer {
  return params(g.rows, g.cols, g.bits, g.groupSize, g.rowWords, g.groups, g.nOut, m, g.hasPerm ? 1 : 0, g.nnz);
}

export const PARAMS_WGSL = /* wgsl */ `
struct Params {
  rows: u32, cols: u32, bits: u32, groupSize: u32,
  rowWords: u32, groups: u32, nOut: u32, m: u32,
  hasPerm: u32, nnz: u32, _p1: u32, _p2: u32,
}

// Offsets of the outliers' index in I (nnz > 0 only; src/gpu/packed-weight.ts)
fn oRowPtr() -> u32 { return 3u * P.cols + P.nOut; }
fn oColIdx() -> u32 { return oRowPtr() + P.rows + 1u; }
fn oRowOf() -> u32 { return oColIdx() + P.nnz; }
fn oColPtr() -> u32 { return oRowOf() + P.nnz; }
fn oRowIdx() -> u32 { return oColPtr() + P.cols + 1u; }
fn oCscPos() -> u32 { return oRowIdx() + P.nnz; }
`;

/**
 * The opening of every packed kernel: bindings 0..4 (codes, scales, zeros, index, weak) and the decode functions,
 * scales read as S_at(g) and weak columns as WK_at(e) in the given read paths (src/gpu/half.ts). The uniform P is
 * declared by each kernel at its own binding. Index offsets: perm at 0, inverse perm at cols, weak slot at 2 cols,
 * weakIdx at 3 cols.
 */
export const decodeWgsl = (scales: ReadPath, weak: ReadPath): string => /* wgsl */ `${enableWgsl([scales, weak])}
${PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> Q: array<u32>;
${loadWgsl(scales, 1, 'S')}
@group(0) @binding(2) var<storage, read> Z: array<u32>;
@group(0) @binding(3) var<storage, read> I: array<i32>;
${loadWgsl(weak, 4, 'WK')}

/** Zero point of group index g (row * groups + group), as f32. */
fn zeroAt(g: u32) -> f32 { return f32((Z[g >> 2u] >> ((g & 3u) * 8u)) & 0xffu); }

/** Code of packed column k of the row whose words start at rowBase. */
fn codeAt(rowBase: u32, k: u32) -> u32 {
  let bit = k * P.bits;
  let w = rowBase + (bit >> 5u);
  let sh = bit & 31u;
  var c = Q[w] >> sh;
  if (sh + P.bits > 32u) { c = c | (Q[w + 1u] << (32u - sh)); }
  return c & ((1u << P.bits) - 1u);
}

/** Ŵ[r, j] in input-column order, weak column included (as the reference: s * (code - z), then + weak). */
fn whatAt(r: u32, j: u32) -> f32 {
  let k = u32(I[P.cols + j]);
  let g = r * P.groups + k / P.groupSize;
  var v = S_at(g) * (f32(codeAt(r * P.rowWords, k)) - zeroAt(g));
  let slot = I[2u * P.cols + j];
  if (slot >= 0) { v = v + WK_at(r * P.nOut + u32(slot)); }
  return v;
}
`;

/** A packed kernel built for the read paths of its scales (binding 1) and weak columns (binding 4). */
export function packedKernel(label: string, code: string, scales: ReadPath, weak: ReadPath): GpuKernel {
  const half: Record<number, 'f16' | 'bf16'> = {};
  for (const [binding, path] of [[1, scales] as const, [4, weak] as const]) {
    const format = formatOf(path);
    if (format !== 'f32') half[binding] = format;
  }
  return { label, code, half };
}
