/**
 * Dense f32 GEMM in WGSL, the GemmDims contract of src/native/types.ts: C[b] = alpha op(A[b]) op(B[b]) +
 * beta C[b], both transposes, batched with element strides (0 broadcasts one matrix), beta 0 making C
 * write-only as BLAS does.
 *
 * Tiling: a workgroup of 16x16 invocations computes a 64x64 tile of C, each invocation 4x4 outputs strided by
 * 16 (rows ty + 16i, columns tx + 16j, so that neighbouring invocations touch neighbouring columns); K is
 * walked in steps of 16 through two workgroup-memory tiles (A 64x16, B 16x64: 8 KiB), zero-filled past the
 * edges, so any m, n, k work. Accumulation is f32 (the reference accumulates in f64: see the tolerance of
 * test/gpu/matmul.test.ts). One dispatch per call: workgroups (ceil(n/64), ceil(m/64), batch). B may be half
 * storage (a frozen f16/bf16 weight: forward Y = X W^T, backward dX = dY W; src/gpu/half.ts): one kernel per read
 * path of B, which changes only its load function B_at.
 */
import type { GemmDims } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, f32, type GpuKernel, need, params } from './dispatch.js';
import { enableWgsl, formatOf, loadWgsl, type ReadPath, readPath, variants } from './half.js';

/** The tiling the GEMMs share (this file and src/gpu/packed-gemm.ts): a TILE x TILE block of C per workgroup of WG x WG, K in steps of TK. */
export const TILE = 64;
export const TK = 16;
export const WG = 16;
/** Invocations per workgroup the kernel needs: a compatibility device gives 128 unless asked (device.ts asks). */
export const GEMM_INVOCATIONS = WG * WG;

/**
 * The product of one K step of the workgroup tiles, shared with the packed GEMM (src/gpu/packed-gemm.ts): As
 * [TILE][TK] and Bs [TK][TILE] in workgroup memory, each invocation's R x R outputs (rows lid.y + WG i, columns
 * lid.x + WG j) accumulated in acc with fma.
 */
export const TILE_PRODUCT_WGSL = /* wgsl */ `
    for (var p = 0u; p < TK; p++) {
      var b: array<f32, ${TILE / WG}>;
      for (var j = 0u; j < R; j++) { b[j] = Bs[p * TILE + lid.x + WG * j]; }
      for (var i = 0u; i < R; i++) {
        let a = As[(lid.y + WG * i) * TK + p];
        for (var j = 0u; j < R; j++) { acc[i * R + j] = fma(a, b[j], acc[i * R + j]); }
      }
    }`;

const wgsl = (b: ReadPath): string => /* wgsl */ `${enableWgsl([b])}
struct Params {
  m: u32, n: u32, k: u32, transA: u32,
  transB: u32, strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32, kBegin: u32, kEnd: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
${loadWgsl(b, 1, 'B')}
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
const WG: u32 = ${WG}u;
const R: u32 = TILE / WG; // outputs per invocation per dimension

var<workgroup> As: array<f32, ${TILE * TK}>; // [TILE rows][TK]
var<workgroup> Bs: array<f32, ${TK * TILE}>; // [TK][TILE cols]

fn loadA(oa: u32, i: u32, p: u32) -> f32 {
  if (i >= P.m || p >= P.kEnd) { return 0.0; }
  if (P.transA != 0u) { return A[oa + p * P.m + i]; }
  return A[oa + i * P.k + p];
}

fn loadB(ob: u32, p: u32, j: u32) -> f32 {
  if (p >= P.kEnd || j >= P.n) { return 0.0; }
  if (P.transB != 0u) { return B_at(ob + j * P.k + p); }
  return B_at(ob + p * P.n + j);
}

@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let oa = wg.z * P.strideA;
  let ob = wg.z * P.strideB;
  let oc = wg.z * P.strideC;
  var acc: array<f32, ${(TILE / WG) * (TILE / WG)}>;
  for (var t = 0u; t < R * R; t++) { acc[t] = 0.0; }

  for (var k0 = P.kBegin; k0 < P.kEnd; k0 += TK) {
    for (var e = li; e < TILE * TK; e += WG * WG) {
      As[e] = loadA(oa, row0 + e / TK, k0 + e % TK);
      Bs[e] = loadB(ob, k0 + e / TILE, col0 + e % TILE);
    }
    workgroupBarrier();
${TILE_PRODUCT_WGSL}
    workgroupBarrier();
  }

  for (var i = 0u; i < R; i++) {
    let r = row0 + lid.y + WG * i;
    if (r >= P.m) { continue; }
    for (var j = 0u; j < R; j++) {
      let c = col0 + lid.x + WG * j;
      if (c >= P.n) { continue; }
      let ci = oc + r * P.n + c;
      if (P.beta == 0.0) { C[ci] = P.alpha * acc[i * R + j]; }
      else { C[ci] = P.alpha * acc[i * R + j] + P.beta * C[ci]; }
    }
  }
}
`;

const KERNEL = variants((b): GpuKernel => {
  const format = formatOf(b);
  return { label: 'gemm', code: wgsl(b), half: format === 'f32' ? {} : { 1: format } };
});

/**
 * The reduction length one dispatch walks. On llvmpipe (Mesa 22.3) a longer K loop silently stopped early: an
 * all-ones product with K = 65536 or 50272 gave 45585 (K <= 40000 was exact), so longer products are split.
 */
export const K_CHUNK = 16384;

function extent(batch: number, stride: number, size: number): number {
  return batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size;
}

/** C = alpha op(A) op(B) + beta C on device arrays (the GemmDims contract; one dispatch). */
export function gemm(a: GpuArray, b: GpuArray, c: GpuArray, d: GemmDims): void {
  const { batch, m, n, k } = d;
  need('gemm', 'a', a, extent(batch, d.strideA, m * k));
  need('gemm', 'b', b, extent(batch, d.strideB, k * n));
  need('gemm', 'c', c, extent(batch, d.strideC, m * n));
  if (batch === 0 || m === 0 || n === 0) return;
  const { device } = c.ctx;
  if (device.limits.maxComputeInvocationsPerWorkgroup < GEMM_INVOCATIONS) {
    throw new RangeError(
      `gemm: the device allows ${device.limits.maxComputeInvocationsPerWorkgroup} invocations per workgroup, ` +
        `the kernel needs ${GEMM_INVOCATIONS} (request the adapter's limit, as src/gpu/device.ts does)`,
    );
  }
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const gx = Math.ceil(n / TILE);
  const gy = Math.ceil(m / TILE);
  if (gx > maxGroups || gy > maxGroups || batch > maxGroups) {
    throw new RangeError(`gemm: ${gx}x${gy}x${batch} workgroups exceed the device's ${maxGroups} per dimension`);
  }
  const kernel = KERNEL(readPath(device, b.format));
  // One dispatch per K_CHUNK of the reduction, the later ones adding to C (beta 1).
  const head = [m, n, k, d.transA ? 1 : 0, d.transB ? 1 : 0, d.strideA, d.strideB, d.strideC];
  for (let k0 = 0; k0 === 0 || k0 < k; k0 += K_CHUNK) {
    const beta = k0 === 0 ? d.beta : 1;
    const kEnd = Math.min(k, k0 + K_CHUNK);
    dispatch(c.ctx, kernel, [a, b, c], params(...head, f32(d.alpha), f32(beta), k0, kEnd), [gx, gy, batch]);
  }
}
