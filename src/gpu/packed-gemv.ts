/**
 * The decode GEMV through a packed weight: y [M, N] = x [M, K] Ŵᵀ for small M (1..GEMV_MAX_M).
 *
 * One workgroup of 64 invocations computes ROWS = 4 output rows for all M input rows. A row's codes are walked
 * in units (src/gpu/packed-weight.ts: one u32 word of 16 / 8 / 4 codes at 2 / 4 / 8 bits, three words of 32
 * codes at 3 bits): invocation t reads units t, t + 64, ..., so the workgroup's loads of one row are
 * consecutive words (coalesced), and each code is read once per call. A unit inside one group (the common case)
 * costs one scale and zero point: s * Σ (code - z) x; a unit cut by a group edge or by the row's end decodes
 * code by code. x is read at perm[k] when the weight has a permutation. The weak columns are split over the
 * invocations the same way (weak[r, t] x[weakIdx[t]] for t = lid, lid + 64, ...). The 4 x M partial sums of
 * every invocation are then added by a tree reduction in workgroup memory (f32; deterministic). A weight with
 * sparse outliers (src/gpu/packed-weight.ts) is read by a variant that also splits each row's outliers over the
 * invocations (V[p] x[colIdx[p]] for p = rowPtr[r] + lid, + 64, ...; the values V at binding 7) before the
 * reduction, so the GEMV stays one dispatch. One pipeline per bit width, so that the unit's shifts are constants.
 */
import { type Binding, dispatch, type GpuKernel, grid } from './dispatch.js';
import { type ReadPath, variants } from './half.js';
import { decodeWgsl, type GpuPackedWeight, packedKernel, packedParams, unitCodes, unitWords } from './packed-weight.js';
import { PACKED_LAYOUT, type PackedBits } from '../native/packed.js';

/** The largest M the GEMV takes (decode and small batches); larger M goes through the tiled GEMM. */
export const GEMV_MAX_M = 4;
const WG = 64;
const ROWS = 4;

function gemvWgsl(bits: PackedBits, scales: ReadPath, weak: ReadPath, sparse: boolean): string {
  const uw = unitWords(bits);
  const cu = unitCodes(bits);
  const acc = ROWS * GEMV_MAX_M;
  return /* wgsl */ `${decodeWgsl(scales, weak)}
@group(0) @binding(5) var<storage, read> X: array<f32>;
@group(0) @binding(6) var<storage, read_write> Y: array<f32>;
${
  sparse
    ? '@group(0) @binding(7) var<storage, read> V: array<f32>;\n@group(0) @binding(8) var<uniform> P: Params;'
    : '@group(0) @binding(7) var<uniform> P: Params;'
}

const B: u32 = ${bits}u;
const UW: u32 = ${uw}u;
const CU: u32 = ${cu}u;
const WG: u32 = ${WG}u;
const ROWS: u32 = ${ROWS}u;
const MM: u32 = ${GEMV_MAX_M}u;
const NACC: u32 = ${acc}u;
const MASK: u32 = ${(1 << bits) - 1}u;

var<workgroup> red: array<f32, ${WG * acc}>;

fn xAt(i: u32, k: u32) -> f32 {
  var j = k;
  if (P.hasPerm != 0u) { j = u32(I[k]); }
  return X[i * P.cols + j];
}

/** Code c of a unit held in words u. */
fn unitCode(u: array<u32, ${uw}>, c: u32) -> u32 {
  let bit = c * B;
  let w = bit >> 5u;
  let sh = bit & 31u;
  var v = u[w] >> sh;
  if (sh + B > 32u) { v = v | (u[w + 1u] << (32u - sh)); }
  return v & MASK;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r0 = (wg.x + wg.y * nwg.x) * ROWS;
  let units = P.rowWords / UW;
  var acc: array<f32, ${acc}>;
  for (var q = 0u; q < NACC; q++) { acc[q] = 0.0; }

  for (var rr = 0u; rr < ROWS; rr++) {
    let r = r0 + rr;
    if (r >= P.rows) { break; }
    for (var n = lid; n < units; n += WG) {
      var u: array<u32, ${uw}>;
      let base = r * P.rowWords + n * UW;
      for (var t = 0u; t < UW; t++) { u[t] = Q[base + t]; }
      let k0 = n * CU;
      if (k0 + CU <= P.cols && k0 / P.groupSize == (k0 + CU - 1u) / P.groupSize) {
        let g = r * P.groups + k0 / P.groupSize;
        let z = zeroAt(g);
        var d: array<f32, ${GEMV_MAX_M}>;
        for (var i = 0u; i < MM; i++) { d[i] = 0.0; }
        for (var c = 0u; c < CU; c++) {
          let cz = f32(unitCode(u, c)) - z;
          for (var i = 0u; i < P.m; i++) { d[i] = fma(cz, xAt(i, k0 + c), d[i]); }
        }
        let s = S_at(g);
        for (var i = 0u; i < P.m; i++) { acc[rr * MM + i] = fma(s, d[i], acc[rr * MM + i]); }
      } else {
        for (var c = 0u; c < CU; c++) {
          let k = k0 + c;
          if (k >= P.cols) { break; }
          let g = r * P.groups + k / P.groupSize;
          let v = S_at(g) * (f32(unitCode(u, c)) - zeroAt(g));
          for (var i = 0u; i < P.m; i++) { acc[rr * MM + i] = fma(v, xAt(i, k), acc[rr * MM + i]); }
        }
      }
    }
    for (var t = lid; t < P.nOut; t += WG) {
      let v = WK_at(r * P.nOut + t);
      let j = u32(I[3u * P.cols + t]);
      for (var i = 0u; i < P.m; i++) { acc[rr * MM + i] = fma(v, X[i * P.cols + j], acc[rr * MM + i]); }
    }
${sparse ? SPARSE_WGSL : ''}  }

  for (var q = 0u; q < NACC; q++) { red[lid * NACC + q] = acc[q]; }
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid < h) {
      for (var q = 0u; q < NACC; q++) { red[lid * NACC + q] = red[lid * NACC + q] + red[(lid + h) * NACC + q]; }
    }
    workgroupBarrier();
  }
  if (lid < NACC) {
    let r = r0 + lid / MM;
    let i = lid % MM;
    if (r < P.rows && i < P.m) { Y[i * P.rows + r] = red[lid]; }
  }
}
`;
}

/** The outliers of row r, split over the invocations like the weak columns (the sparse variant only). */
const SPARSE_WGSL = /* wgsl */ `    let p1 = u32(I[oRowPtr() + r + 1u]);
    for (var p = u32(I[oRowPtr() + r]) + lid; p < p1; p += WG) {
      let v = V[p];
      let j = u32(I[oColIdx() + p]);
      for (var i = 0u; i < P.m; i++) { acc[rr * MM + i] = fma(v, X[i * P.cols + j], acc[rr * MM + i]); }
    }
`;

/** One kernel per bit width and read paths of scales and weak (built on first use, compiled once by dispatch). */
const kernels = (sparse: boolean) =>
  new Map<PackedBits, (scales: ReadPath, weak: ReadPath) => GpuKernel>(
    PACKED_LAYOUT.bits.map((bits) => [
      bits,
      variants((s, w) =>
        packedKernel(`packed gemv ${bits}-bit${sparse ? ' outliers' : ''}`, gemvWgsl(bits, s, w, sparse), s, w),
      ),
    ]),
  );
const KERNELS = kernels(false);
/** The variants that also add the sparse outliers (a weight with nnz > 0). */
const SPARSE = kernels(true);

/** y [m, N] = x [m, K] Ŵᵀ for 1 <= m <= GEMV_MAX_M, outliers included (validated by the caller). */
export function encodePackedGemv(g: GpuPackedWeight, x: Binding, m: number, y: Binding): void {
  const blocks = Math.ceil(g.rows / ROWS);
  const bindings: Binding[] = [g.qweight, g.scales, g.zeros, g.index, g.weak, x, y];
  if (g.nnz > 0) bindings.push(g.outlierValues!);
  const kernel = (g.nnz > 0 ? SPARSE : KERNELS).get(g.bits)!(...g.reads);
  dispatch(g.ctx, kernel, bindings, packedParams(g, m), grid(g.ctx, blocks * WG, WG));
}
