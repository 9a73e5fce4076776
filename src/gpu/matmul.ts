/**
 * Dense f32 GEMM in WGSL, the GemmDims contract of src/native/types.ts: C[b] = alpha op(A[b]) op(B[b]) +
 * beta C[b], both transposes, batched with element strides (0 broadcasts one matrix), beta 0 making C
 * write-only as BLAS does.
 *
 * Tiling: a workgroup of 8x8 invocations computes a 64x64 tile of C, each invocation an 8x8 block of it (rows
 * 8 ty .. 8 ty + 7, columns 8 tx .. 8 tx + 7) held in 16 vec4 accumulators. K is walked in steps of 16 through
 * two workgroup-memory tiles stored k-major as vec4s (A: 16 x 64 rows, B: 16 x 64 columns: 8 KiB), zero-filled
 * past the edges by branch-free loads (a select on a clamped index), so any m, n, k work. One step of k reads
 * 2 vec4s of A and 2 of B and issues 16 vec4 fmas; the k loop is unrolled in the generated WGSL.
 *
 * Why this shape (llvmpipe, Mesa 22.3, 8-lane SIMD over invocations; the JIT code read with perf and gdb): every
 * load from workgroup or storage memory becomes a loop over the 8 lanes (~35 instructions a lane, the counter in
 * memory), whatever the vector width of the load, while the fmas are plain vector instructions on registers. So
 * the cost is the number of loads, not of floats: 4x4 scalar outputs per invocation (the first version: 8
 * scalar loads per 16 fmas, and an indexed accumulator array) ran at ~1.4 GFLOP/s; 4x4 with vec4s (2 loads per
 * 16) 2.5x faster; 8x8 with vec4s (4 loads per 64) ~4x (figures: docs/GPU-NOTES.md). On a real GPU this is the
 * usual register-blocked GEMM (64 invocations of 64 accumulators, vec4 workgroup reads); not measured on one.
 *
 * Accumulation is f32, in k order per output (the reference accumulates in f64: see the tolerance of
 * test/gpu/matmul.test.ts). One dispatch per call: workgroups (ceil(n/64), ceil(m/64), batch), more where the
 * problem is split into chunks of [batch, m, n, k] (the kernel reads its chunk's origin and ends from the
 * uniform: rows [m0, mEnd), columns [n0, nEnd), k [kBegin, kEnd), batch items from b0): K beyond K_CHUNK, a grid
 * beyond the device's limit, and operands over the binding limit (src/gpu/windows.ts: a 7B lm_head weight as B,
 * the logits as C, dlogits as A), each bound where the chunk reads it, its origin (oA, oB, oC) added to the index.
 * B may be half storage (a frozen f16/bf16 weight: forward Y = X W^T, backward dX = dY W; src/gpu/half.ts): one
 * kernel per read path of B, which changes only its load function B_at; its window and origin count its own
 * 16-bit elements (windows.ts).
 */
import { gemmDims, type GemmDims, type SyrkDims } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, f32, type GpuKernel, need, params } from './dispatch.js';
import { enableWgsl, formatOf, loadWgsl, type ReadPath, readPath, variants } from './half.js';
import { chunksOf, originOf, planChunks, type Reach, windowOf } from './windows.js';

/**
 * The tiling the GEMMs share (this file and src/gpu/packed-gemm.ts): a TILE x TILE block of C per workgroup of
 * WG x WG invocations, K in steps of TK, each invocation RM rows of RN4 vec4s of columns (8 x 8 outputs).
 */
export const TILE = 64;
export const TK = 16;
export const WG = 8;
const RM = TILE / WG;
const RN4 = TILE / WG / 4;
/** Invocations per workgroup the kernel needs (within a compatibility device's default of 128). */
export const GEMM_INVOCATIONS = WG * WG;

/** `f(p)` for p in 0..n-1, joined: the unrolled body of a loop with a constant trip count. */
function unrolled(n: number, f: (p: number) => string): string {
  return Array.from({ length: n }, (_, p) => f(p)).join('\n');
}

/** The accumulator of row i, columns 4q..4q+3 of an invocation's block. */
const acc = (i: number, q: number): string => `acc${i}_${q}`;

/**
 * The workgroup tiles and their loader, shared with the packed GEMM (src/gpu/packed-gemm.ts). The kernel
 * provides `loadA(i, p) -> f32` and `loadB(p, j) -> f32` (the element at row i / column j and k index p, zero
 * outside the matrices, without branching) and `aAlongK()` / `bAlongK()`: true where the operand is contiguous
 * along K, so that neighbouring invocations walk the tile p fastest and read neighbouring addresses.
 * As[p * TILE / 4 + h] holds rows 4h..4h+3 of A at k0 + p, Bs[p * TILE / 4 + h] columns 4h..4h+3 of B.
 */
export const TILE_DECLS_WGSL = /* wgsl */ `
const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
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
    let ia = 4u * select(e % T4, e / TK, aK);
    let ra = row0 + ia;
    As[pa * T4 + ia / 4u] = vec4<f32>(loadA(ra, k0 + pa), loadA(ra + 1u, k0 + pa),
                                      loadA(ra + 2u, k0 + pa), loadA(ra + 3u, k0 + pa));
    let pb = select(e / T4, e % TK, bK);
    let jb = 4u * select(e % T4, e / TK, bK);
    let cb = col0 + jb;
    Bs[pb * T4 + jb / 4u] = vec4<f32>(loadB(k0 + pb, cb), loadB(k0 + pb, cb + 1u),
                                      loadB(k0 + pb, cb + 2u), loadB(k0 + pb, cb + 3u));
  }`;
})}
}
`;

/** The declarations of an invocation's accumulators (zero). */
export const ACC_WGSL = unrolled(RM, (i) => unrolled(RN4, (q) => `  var ${acc(i, q)} = vec4<f32>(0.0);`));

/** The product of one K step of the tiles into the accumulators, unrolled over p. */
export const TILE_PRODUCT_WGSL = unrolled(TK, (p) => {
  const loads = [
    ...Array.from({ length: RM / 4 }, (_, h) => `      let a${h} = As[${p}u * T4 + ${RM / 4}u * lid.y + ${h}u];`),
    ...Array.from({ length: RN4 }, (_, q) => `      let b${q} = Bs[${p}u * T4 + ${RN4}u * lid.x + ${q}u];`),
  ].join('\n');
  const fmas = unrolled(RM, (i) =>
    unrolled(RN4, (q) => `      ${acc(i, q)} = fma(vec4<f32>(a${i >> 2}.${'xyzw'[i & 3]}), b${q}, ${acc(i, q)});`),
  );
  return `    {
${loads}
${fmas}
    }`;
});

/**
 * The stores of an invocation's block: `store` runs for each of its outputs with `r` (row of C), `c + j` (column)
 * and `v[j]` (the accumulated value) in scope; it checks the edges (r < m, c + j < n) itself.
 */
export function storeTileWgsl(store: string): string {
  return unrolled(RM, (i) =>
    unrolled(
      RN4,
      (q) => `  {
    let r = row0 + ${RM}u * lid.y + ${i}u;
    let c = col0 + 4u * (${RN4}u * lid.x + ${q}u);
    let v = ${acc(i, q)};
    for (var j = 0u; j < 4u; j++) { ${store} }
  }`,
    ),
  );
}

const wgsl = (b: ReadPath): string => /* wgsl */ `${enableWgsl([b])}
struct Params {
  m: u32, n: u32, k: u32, transA: u32,
  transB: u32, strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32, kBegin: u32, kEnd: u32,
  m0: u32, mEnd: u32, n0: u32, nEnd: u32,
  b0: u32, oA: u32, oB: u32, oC: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
${loadWgsl(b, 1, 'B')}
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

var<private> oa: u32; // this batch item's offsets into A and B (from the bindings' origins)
var<private> ob: u32;

fn aAlongK() -> bool { return P.transA == 0u; }
fn bAlongK() -> bool { return P.transB != 0u; }

fn loadA(i: u32, p: u32) -> f32 {
  let inside = (i < P.mEnd) & (p < P.kEnd);
  let at = oa + select(i * P.k + p, p * P.m + i, P.transA != 0u);
  return select(0.0, A[select(0u, at, inside)], inside);
}

fn loadB(p: u32, j: u32) -> f32 {
  let inside = (p < P.kEnd) & (j < P.nEnd);
  let at = ob + select(p * P.n + j, j * P.k + p, P.transB != 0u);
  return select(0.0, B_at(select(0u, at, inside)), inside);
}
${TILE_DECLS_WGSL}
@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = P.m0 + wg.y * TILE;
  let col0 = P.n0 + wg.x * TILE;
  let z = P.b0 + wg.z;
  oa = P.oA + z * P.strideA;
  ob = P.oB + z * P.strideB;
  let oc = P.oC + z * P.strideC;
${ACC_WGSL}

  for (var k0 = P.kBegin; k0 < P.kEnd; k0 += TK) {
    loadTiles(li, row0, col0, k0);
    workgroupBarrier();
${TILE_PRODUCT_WGSL}
    workgroupBarrier();
  }

${storeTileWgsl(/* wgsl */ `
      let cj = c + j;
      if (r < P.mEnd && cj < P.nEnd) {
        let ci = oc + r * P.n + cj;
        if (P.beta == 0.0) { C[ci] = P.alpha * v[j]; }
        else { C[ci] = P.alpha * v[j] + P.beta * C[ci]; }
      }`)}
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

/** C = alpha op(A) op(B) + beta C on device arrays (the GemmDims contract; one dispatch unless split). */
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
  const kernel = KERNEL(readPath(device, b.format));
  // Chunks of [batch, m, n, k]: K_CHUNK of the reduction, the grid's limit, and windows of the operands over
  // the binding limit (src/gpu/windows.ts); a chunk after the first of its reduction adds to C (beta 1).
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const totals = [batch, m, n, Math.max(k, 1)];
  const caps = [maxGroups, maxGroups * TILE, maxGroups * TILE, K_CHUNK];
  const reaches: Reach[] = [
    { array: a, strides: d.transA ? [d.strideA, 1, 0, m] : [d.strideA, k, 0, 1], width: 1 },
    { array: b, strides: d.transB ? [d.strideB, 0, k, 1] : [d.strideB, 0, 1, n], width: 1 },
    { array: c, strides: [d.strideC, n, 1, 0], width: 1 },
  ];
  const head = [m, n, k, d.transA ? 1 : 0, d.transB ? 1 : 0, d.strideA, d.strideB, d.strideC];
  for (const ch of chunksOf(totals, planChunks('gemm', totals, reaches, caps))) {
    const [b0, m0, n0, k0] = ch.lo;
    const [bc, mc, nc, kc] = ch.size;
    const beta = k0 === 0 ? d.beta : 1;
    const kEnd = Math.min(k, k0 + kc);
    const bound = reaches.map((r) => windowOf(r, ch));
    const p = params(...head, f32(d.alpha), f32(beta), k0, kEnd, m0, m0 + mc, n0, n0 + nc, b0, ...bound.map(originOf));
    dispatch(c.ctx, kernel, bound, p, [Math.ceil(nc / TILE), Math.ceil(mc / TILE), bc]);
  }
}

/**
 * The contract's syrk (src/native/types.ts SyrkDims) as the full product C = alpha A^T A + beta C: the GEMM kernel
 * has no triangular variant, and the lower triangle it also writes is allowed (unspecified) by the contract.
 */
export function syrk(a: GpuArray, c: GpuArray, d: SyrkDims): void {
  gemm(a, a, c, gemmDims(d.n, d.n, d.k, { transA: true, alpha: d.alpha, beta: d.beta }));
}
