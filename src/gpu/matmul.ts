/**
 * Dense f32 GEMM in WGSL, the GemmDims contract of src/native/types.ts: C[b] = alpha op(A[b]) op(B[b]) +
 * beta C[b], both transposes, batched with element strides (0 broadcasts one matrix), beta 0 making C
 * write-only as BLAS does.
 *
 * Tiling: a workgroup of 16x16 invocations computes a 64x64 tile of C, each invocation 4x4 outputs strided by
 * 16 (rows ty + 16i, columns tx + 16j, so that neighbouring invocations touch neighbouring columns); K is
 * walked in steps of 16 through two workgroup-memory tiles (A 64x16, B 16x64: 8 KiB), zero-filled past the
 * edges, so any m, n, k work. Accumulation is f32 (the reference accumulates in f64: see the tolerance of
 * test/gpu/matmul.test.ts). One dispatch per call: workgroups (ceil(n/64), ceil(m/64), batch).
 */
import type { GemmDims } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, f32, type GpuKernel, need, params } from './dispatch.js';

/** The tiling the GEMMs share (this file and src/gpu/packed-gemm.ts): a TILE x TILE block of C per workgroup of WG x WG, K in steps of TK. */
export const TILE = 64;
export const TK = 32;
export const WG = 16;
/** Invocations per workgroup the kernel needs: a compatibility device gives 128 unless asked (device.ts asks). */
export const GEMM_INVOCATIONS = WG * WG;
/** Outputs per invocation along each dimension: a 4 x 4 block, one vec4 of columns per row. */
const R = TILE / WG;

/** `f(p)` for p in 0..n-1, joined: the unrolled body of a loop with a constant trip count. */
function unrolled(n: number, f: (p: number) => string): string {
  return Array.from({ length: n }, (_, p) => f(p)).join('\n');
}

/**
 * The workgroup tiles, the accumulators and the two steps of the tiled GEMM, shared with the packed GEMM
 * (src/gpu/packed-gemm.ts). The kernel provides `loadA(i, p) -> f32` and `loadB(p, j) -> f32` (zero outside the
 * matrices, without branching: a `select` on an in-range index) and `aAlongK()` / `bAlongK()`, true where the
 * operand's elements are contiguous along K (so that neighbouring invocations read neighbouring elements).
 *
 * As and Bs hold the K step k-major as vec4s of 4 rows / 4 columns: As[p * TILE / 4 + i] = rows 4i..4i+3 at k0 + p.
 * Invocation (x, y) owns rows 4y..4y+3 and columns 4x..4x+3 of the tile, one vec4 accumulator per row, so one
 * step of p reads one vec4 of A and one of B and issues 4 vec4 fmas. llvmpipe runs each vector load as one loop
 * over its SIMD lanes, whatever its width: vec4s cut those loops 4x against scalar reads, and fixed vec4
 * variables stay in registers where an indexed private array lived in memory. The p loop is unrolled (TK is a
 * constant) and TK = 32 halves the barriers of TK = 16.
 */
export const TILE_DECLS_WGSL = /* wgsl */ `
const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
const WG: u32 = ${WG}u;
const T4: u32 = TILE / 4u;
var<workgroup> As: array<vec4<f32>, ${(TK * TILE) / 4}>; // [TK][TILE / 4]: 4 rows of A at one k
var<workgroup> Bs: array<vec4<f32>, ${(TK * TILE) / 4}>; // [TK][TILE / 4]: 4 columns of B at one k

/** Fills As and Bs for the K step at k0: TK x TILE / 4 vec4s each, ${(TK * TILE) / 4 / (WG * WG)} per invocation. */
fn loadTiles(li: u32, row0: u32, col0: u32, k0: u32) {
  let aK = aAlongK();
  let bK = bAlongK();
${unrolled((TK * TILE) / 4 / (WG * WG), (t) => {
  const e = `li + ${t * WG * WG}u`;
  return `  {
    let e = ${e};
    let pa = select(e / T4, e % TK, aK);
    let ia = row0 + 4u * select(e % T4, e / TK, aK);
    As[pa * T4 + (ia - row0) / 4u] = vec4<f32>(loadA(ia, k0 + pa), loadA(ia + 1u, k0 + pa),
                                             loadA(ia + 2u, k0 + pa), loadA(ia + 3u, k0 + pa));
    let pb = select(e / T4, e % TK, bK);
    let jb = col0 + 4u * select(e % T4, e / TK, bK);
    Bs[pb * T4 + (jb - col0) / 4u] = vec4<f32>(loadB(k0 + pb, jb), loadB(k0 + pb, jb + 1u),
                                             loadB(k0 + pb, jb + 2u), loadB(k0 + pb, jb + 3u));
  }`;
})}
}
`;

/** The accumulators of an invocation: acc{i} holds row 4 lid.y + i, columns 4 lid.x .. 4 lid.x + 3. */
export const ACC_WGSL = unrolled(R, (i) => `  var acc${i} = vec4<f32>(0.0);`);

/** The product of one K step of the tiles (TILE_DECLS_WGSL), unrolled over p. */
export const TILE_PRODUCT_WGSL = unrolled(TK, (p) => {
  const fmas = unrolled(R, (i) => `      acc${i} = fma(vec4<f32>(a.${'xyzw'[i]}), b, acc${i});`);
  return `    {
      let a = As[${p}u * T4 + lid.y];
      let b = Bs[${p}u * T4 + lid.x];
${fmas}
    }`;
});

/** Row i of the accumulators (0..3) as WGSL, for the kernels' stores. */
export const ACC_ROWS = Array.from({ length: R }, (_, i) => `acc${i}`).join(', ');

const WGSL = /* wgsl */ `
struct Params {
  m: u32, n: u32, k: u32, transA: u32,
  transB: u32, strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32, kBegin: u32, kEnd: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

var<private> oa: u32; // this batch item's offsets into A and B
var<private> ob: u32;

fn aAlongK() -> bool { return P.transA == 0u; }
fn bAlongK() -> bool { return P.transB != 0u; }

fn loadA(i: u32, p: u32) -> f32 {
  let inside = (i < P.m) & (p < P.kEnd);
  let at = oa + select(i * P.k + p, p * P.m + i, P.transA != 0u);
  return select(0.0, A[select(0u, at, inside)], inside);
}

fn loadB(p: u32, j: u32) -> f32 {
  let inside = (p < P.kEnd) & (j < P.n);
  let at = ob + select(p * P.n + j, j * P.k + p, P.transB != 0u);
  return select(0.0, B[select(0u, at, inside)], inside);
}
${TILE_DECLS_WGSL}
@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  oa = wg.z * P.strideA;
  ob = wg.z * P.strideB;
  let oc = wg.z * P.strideC;
${ACC_WGSL}

  for (var k0 = P.kBegin; k0 < P.kEnd; k0 += TK) {
    loadTiles(li, row0, col0, k0);
    workgroupBarrier();
${TILE_PRODUCT_WGSL}
    workgroupBarrier();
  }

  let acc = array<vec4<f32>, 4>(${ACC_ROWS});
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + 4u * lid.y + i;
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + 4u * lid.x + j;
      if (r < P.m && c < P.n) {
        let ci = oc + r * P.n + c;
        if (P.beta == 0.0) { C[ci] = P.alpha * acc[i][j]; }
        else { C[ci] = P.alpha * acc[i][j] + P.beta * C[ci]; }
      }
    }
  }
}
`;

const KERNEL: GpuKernel = { label: 'gemm', code: WGSL };

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
  // One dispatch per K_CHUNK of the reduction, the later ones adding to C (beta 1).
  const head = [m, n, k, d.transA ? 1 : 0, d.transB ? 1 : 0, d.strideA, d.strideB, d.strideC];
  for (let k0 = 0; k0 === 0 || k0 < k; k0 += K_CHUNK) {
    const beta = k0 === 0 ? d.beta : 1;
    const kEnd = Math.min(k, k0 + K_CHUNK);
    dispatch(c.ctx, KERNEL, [a, b, c], params(...head, f32(d.alpha), f32(beta), k0, kEnd), [gx, gy, batch]);
  }
}
