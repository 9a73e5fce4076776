/**
 * The device copy of a packed low-bit weight (src/native/packed.ts, kernels/PACKED.md) and the WGSL every packed
 * kernel shares to decode it.
 *
 * Device layout (the host format is unchanged; this is what packedToGpu writes):
 *   qweight: u32 words, row r at word r * rowWords. The host row's bytes are copied as they are (the same
 *     little-endian bit stream: packed column k in bits [k*b, (k+1)*b) of the row), then zero-padded to a whole
 *     number of *units*: one word for b = 2, 4, 8 (16, 8, 4 codes) and three words for b = 3 (32 codes, the
 *     smallest run of 3-bit codes that ends on a word). A 3-bit code may straddle two words of its unit.
 *   scales: the host f32 [N, ceil(K/G)] as a GpuArray. zeros: the host u8 bytes, four to a u32 word.
 *   index: one i32 buffer [perm (K) | inverse perm (K) | weak slot (K) | weakIdx (nOut)]: perm and its inverse
 *     are the identity when the host perm is null; weak slot j is the position of input column j in weakIdx,
 *     or -1 (so a kernel walking input columns finds a weak column without searching).
 *   weak: f32 [N, nOut] as a GpuArray, read by every call (never cached): Weak Column Tuning makes it the
 *     trainable tensor's storage and may replace it with another array of the same length.
 */
import { OptionError } from '../errors.js';
import { type GpuArray, type GpuContext, keep, release } from './array.js';
import { params } from './dispatch.js';
import { type PackedBits, packedGroups, packedRowBytes, type PackedWeight, validatePacked } from '../native/packed.js';

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
    readonly scales: GpuArray,
    /** u8 zero points, four to a u32 word. */
    readonly zeros: GPUBuffer,
    /** i32 [perm | inverse perm | weak slot | weakIdx] (see the top of this file). */
    readonly index: GPUBuffer,
    readonly hasPerm: boolean,
    /** f32 [rows, nOut]: the weak columns, read on every call; may be replaced by an array of the same length. */
    public weak: GpuArray,
    /** The weak array packedToGpu made (releasePacked frees this one, not a replacement the caller owns). */
    readonly ownWeak: GpuArray,
  ) {}

  get nOut(): number {
    return this.weakIdx.length;
  }

  get groups(): number {
    return packedGroups(this.cols, this.groupSize);
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
  const idx = new Int32Array(3 * k + w.weakIdx.length);
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
  return idx;
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

/**
 * Uploads a packed weight (validated first, as loaders do). The result is persistent: call it outside any
 * scope, or keep() is done for you; free it with releasePacked.
 */
export function packedToGpu(ctx: GpuContext, w: PackedWeight): GpuPackedWeight {
  validatePacked(w, 'packedToGpu');
  const rowWords = rowWordsOf(w.cols, w.bits);
  const codes = deviceCodes(w, rowWords);
  checkBinding(ctx, 'qweight', codes.byteLength);
  const index = indexOf(w);
  checkBinding(ctx, 'the index', index.byteLength);
  const weak = keep(ctx.upload(w.weak, 'packed weak'));
  return new GpuPackedWeight(
    ctx,
    w.rows,
    w.cols,
    w.bits,
    w.groupSize,
    Int32Array.from(w.weakIdx),
    ctx.uploadRaw(codes, 'packed qweight'),
    rowWords,
    keep(ctx.upload(w.scales, 'packed scales')),
    ctx.uploadRaw(w.zeros, 'packed zeros'),
    ctx.uploadRaw(index, 'packed index'),
    w.perm !== null,
    weak,
    weak,
  );
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
}

/** The uniform every packed kernel reads (PARAMS_WGSL), with `m` the batch rows of the call. */
export function packedParams(g: GpuPackedWeight, m: number): ArrayBuffer {
  return params(g.rows, g.cols, g.bits, g.groupSize, g.rowWords, g.groups, g.nOut, m, g.hasPerm ? 1 : 0);
}

export const PARAMS_WGSL = /* wgsl */ `
struct Params {
  rows: u32, cols: u32, bits: u32, groupSize: u32,
  rowWords: u32, groups: u32, nOut: u32, m: u32,
  hasPerm: u32, _p0: u32, _p1: u32, _p2: u32,
}
`;

/**
 * Bindings 0..4 (codes, scales, zeros, index, weak) and the decode functions. The uniform P is declared by
 * each kernel at its own binding. Index offsets: perm at 0, inverse perm at cols, weak slot at 2 cols,
 * weakIdx at 3 cols.
 */
export const DECODE_WGSL = /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> Q: array<u32>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<u32>;
@group(0) @binding(3) var<storage, read> I: array<i32>;
@group(0) @binding(4) var<storage, read> WK: array<f32>;

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
  var v = S[g] * (f32(codeAt(r * P.rowWords, k)) - zeroAt(g));
  let slot = I[2u * P.cols + j];
  if (slot >= 0) { v = v + WK[r * P.nOut + u32(slot)]; }
  return v;
}
`;
