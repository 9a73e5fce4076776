/**
 * The batched products through a packed weight, tiled like the dense GEMM (src/gpu/matmul.ts):
 *   forward  y [M, N] = x [M, K] Ŵᵀ   (packedMatmul for M above the GEMV's range)
 *   backward dx [M, K] = dy [M, N] Ŵ  (packedMatmulT, every M; overwrites dx)
 * Both are C = A B with B an element of Ŵ: forward B[p, c] = Ŵ[c, p], backward B[p, c] = Ŵ[p, c].
 *
 * The dense GEMM's tiles, loader, product and stores (64x64 tile of C per workgroup of 8x8 invocations, 8x8
 * outputs each, K steps of 16: src/gpu/matmul.ts) with this file's element loaders: A a row-major [M, inner]
 * matrix, B the dequantized Ŵ element whatAt(r, j) of src/gpu/packed-weight.ts (codes decoded from u32 words,
 * perm and weak columns through the index buffer), zero past the edges. Forward, neighbouring invocations
 * dequantize neighbouring columns of one row (neighbouring codes of one word). f32 fma
 * accumulation along the inner dimension (the tolerance of test/gpu/packed.test.ts grows with it).
 */
import { type Binding, dispatch, type GpuKernel } from './dispatch.js';
import { ACC_WGSL, GEMM_INVOCATIONS, storeTileWgsl, TILE, TILE_DECLS_WGSL, TILE_PRODUCT_WGSL, WG } from './matmul.js';
import { type ReadPath, variants } from './half.js';
import { decodeWgsl, type GpuPackedWeight, packedKernel, packedParams } from './packed-weight.js';

/** WGSL of one direction: `inner` and `outCols` name the Params fields of the inner dimension and C's width. */
function tiledWgsl(forward: boolean, scales: ReadPath, weak: ReadPath): string {
  const inner = forward ? 'P.cols' : 'P.rows';
  const outCols = forward ? 'P.rows' : 'P.cols';
  const what = forward
    ? 'whatAt(select(0u, c, inside), select(0u, p, inside))'
    : 'whatAt(select(0u, p, inside), select(0u, c, inside))';
  return /* wgsl */ `${decodeWgsl(scales, weak)}
@group(0) @binding(5) var<storage, read> A: array<f32>;
@group(0) @binding(6) var<storage, read_write> C: array<f32>;
@group(0) @binding(7) var<uniform> P: Params;

fn aAlongK() -> bool { return true; }
// forward: the tile is walked p fastest so that invocations read along a row of codes
fn bAlongK() -> bool { return ${forward}; }

fn loadA(i: u32, p: u32) -> f32 {
  let inside = (i < P.m) & (p < ${inner});
  return select(0.0, A[select(0u, i * ${inner} + p, inside)], inside);
}

fn loadB(p: u32, c: u32) -> f32 {
  let inside = (p < ${inner}) & (c < ${outCols});
  return select(0.0, ${what}, inside);
}
${TILE_DECLS_WGSL}
@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
${ACC_WGSL}

  for (var k0 = 0u; k0 < ${inner}; k0 += TK) {
    loadTiles(li, row0, col0, k0);
    workgroupBarrier();
${TILE_PRODUCT_WGSL}
    workgroupBarrier();
  }

${storeTileWgsl(`if (r < P.m && c + j < ${outCols}) { C[r * ${outCols} + c + j] = v[j]; }`)}
}
`;
}

const FORWARD = variants((s, w) => packedKernel('packed gemm', tiledWgsl(true, s, w), s, w));
const BACKWARD = variants((s, w) => packedKernel('packed gemm dx', tiledWgsl(false, s, w), s, w));

function run(kernel: GpuKernel, g: GpuPackedWeight, a: Binding, m: number, c: Binding, outCols: number): void {
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
export function encodePackedGemm(g: GpuPackedWeight, x: Binding, m: number, y: Binding): void {
  run(FORWARD(...g.reads), g, x, m, y, g.rows);
}

/** dx [m, K] = dy [m, N] Ŵ (validated by the caller; overwrites dx). */
export function encodePackedGemmT(g: GpuPackedWeight, dy: Binding, m: number, dx: Binding): void {
  run(BACKWARD(...g.reads), g, dy, m, dx, g.cols);
}
