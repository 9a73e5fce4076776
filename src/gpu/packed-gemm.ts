/**
 * The batched products through a packed weight, tiled like the dense GEMM (src/gpu/matmul.ts):
 *   forward  y [M, N] = x [M, K] Ŵᵀ   (packedMatmul for M above the GEMV's range)
 *   backward dx [M, K] = dy [M, N] Ŵ  (packedMatmulT, every M; overwrites dx)
 * Both are C = A B with B an element of Ŵ: forward B[p, c] = Ŵ[c, p], backward B[p, c] = Ŵ[p, c].
 *
 * A workgroup of 16x16 invocations computes a 64x64 tile of C, 4x4 outputs per invocation strided by 16; the
 * inner dimension is walked in steps of 16 through two workgroup-memory tiles: A (64x16 floats) and the
 * dequantized Ŵ tile (16x64), each element of it whatAt(r, j) of src/gpu/packed-weight.ts (codes decoded from
 * u32 words, perm and weak columns through the index buffer), zero past the edges. Forward, neighbouring
 * invocations dequantize neighbouring columns of one row (neighbouring codes of one word). f32 fma
 * accumulation along the inner dimension (the tolerance of test/gpu/packed.test.ts grows with it).
 */
import type { GpuArray } from './array.js';
import { dispatch, type GpuKernel } from './dispatch.js';
import { GEMM_INVOCATIONS, TILE, TILE_PRODUCT_WGSL, TK, WG } from './matmul.js';
import { type ReadPath, variants } from './half.js';
import { decodeWgsl, type GpuPackedWeight, packedKernel, packedParams } from './packed-weight.js';

/** WGSL of one direction: `inner` and `outCols` name the Params fields of the inner dimension and C's width. */
function tiledWgsl(forward: boolean, scales: ReadPath, weak: ReadPath): string {
  const inner = forward ? 'P.cols' : 'P.rows';
  const outCols = forward ? 'P.rows' : 'P.cols';
  // forward: e walks the tile column-major (p fastest) so that invocations read along a row of codes
  const loadB = forward
    ? `let p = e % TK; let c = e / TK; Bs[p * TILE + c] = loadB(k0 + p, col0 + c);`
    : `Bs[e] = loadB(k0 + e / TILE, col0 + e % TILE);`;
  const what = forward ? 'whatAt(c, p)' : 'whatAt(p, c)';
  return /* wgsl */ `${decodeWgsl(scales, weak)}
@group(0) @binding(5) var<storage, read> A: array<f32>;
@group(0) @binding(6) var<storage, read_write> C: array<f32>;
@group(0) @binding(7) var<uniform> P: Params;

const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
const WG: u32 = ${WG}u;
const R: u32 = TILE / WG;

var<workgroup> As: array<f32, ${TILE * TK}>;
var<workgroup> Bs: array<f32, ${TK * TILE}>;

fn loadA(i: u32, p: u32) -> f32 {
  if (i >= P.m || p >= ${inner}) { return 0.0; }
  return A[i * ${inner} + p];
}

fn loadB(p: u32, c: u32) -> f32 {
  if (p >= ${inner} || c >= ${outCols}) { return 0.0; }
  return ${what};
}

@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  var acc: array<f32, ${(TILE / WG) * (TILE / WG)}>;
  for (var t = 0u; t < R * R; t++) { acc[t] = 0.0; }

  for (var k0 = 0u; k0 < ${inner}; k0 += TK) {
    for (var e = li; e < TILE * TK; e += WG * WG) {
      As[e] = loadA(row0 + e / TK, k0 + e % TK);
      ${loadB}
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
      if (c < ${outCols}) { C[r * ${outCols} + c] = acc[i * R + j]; }
    }
  }
}
`;
}

const FORWARD = variants((s, w) => packedKernel('packed gemm', tiledWgsl(true, s, w), s, w));
const BACKWARD = variants((s, w) => packedKernel('packed gemm dx', tiledWgsl(false, s, w), s, w));

function run(kernel: GpuKernel, g: GpuPackedWeight, a: GpuArray, m: number, c: GpuArray, outCols: number): void {
  const { limits } = g.ctx.device;
  if (limits.maxComputeInvocationsPerWorkgroup < GEMM_INVOCATIONS) {
    throw new RangeError(
      `${kernel.label}: the device allows ${limits.maxComputeInvocationsPerWorkgroup} invocations per workgroup, ` +
        `the kernel needs ${GEMM_INVOCATIONS} (request the adapter's limit, as src/gpu/device.ts does)`,
    );
  }
  const gx = Math.ceil(outCols / TILE);
  const gy = Math.ceil(m / TILE);
  const max = limits.maxComputeWorkgroupsPerDimension;
  if (gx > max || gy > max) throw new RangeError(`${kernel.label}: ${gx}x${gy} workgroups exceed ${max} per dimension`);
  dispatch(g.ctx, kernel, [g.qweight, g.scales, g.zeros, g.index, g.weak, a, c], packedParams(g, m), [gx, gy, 1]);
}

/** y [m, N] = x [m, K] Ŵᵀ (validated by the caller). */
export function encodePackedGemm(g: GpuPackedWeight, x: GpuArray, m: number, y: GpuArray): void {
  run(FORWARD(...g.reads), g, x, m, y, g.rows);
}

/** dx [m, K] = dy [m, N] Ŵ (validated by the caller; overwrites dx). */
export function encodePackedGemmT(g: GpuPackedWeight, dy: GpuArray, m: number, dx: GpuArray): void {
  run(BACKWARD(...g.reads), g, dy, m, dx, g.cols);
}
