/**
 * Shared pieces of the row-wise kernels (norms, softmax, attention): one workgroup per row, the row index over
 * a 2-D grid (rows beyond 65535 workgroups), and a deterministic workgroup reduction.
 *
 * A row kernel is compiled per workgroup width (`ROW_WG` in its WGSL, a power of two): `rowWidth(cols)` gives
 * ROW_MIN_WG..ROW_MAX_WG lanes, about ROW_PER_LANE columns each, so a short row (hidden 128, a 512-long
 * softmax) does not idle most of 256 lanes through every barrier of the tree (on llvmpipe each barrier costs
 * a pass over all lanes: RMSNorm of 512 x 128 went from 12.8 to 1.8 ms, softmax of 512 x 512 from 28 to 13 ms);
 * rows from 1024 columns keep 256 lanes.
 *
 * The reduction is a fixed tree in workgroup memory: each invocation first folds its strided elements
 * (column lid, lid + ROW_WG, ...) in order, then the ROW_WG partials are halved pairwise. The width depends
 * only on cols and the order never depends on timing, so a kernel gives bit-identical results run to run; the
 * error of an f32 sum of n terms grows as ~(n / ROW_WG + log2 ROW_WG) ulps instead of n.
 */
import type { GpuArray, GpuContext } from './array.js';
import { type GpuKernel, grid } from './dispatch.js';

/** The widest row workgroup (a power of two; the device asks the adapter's 1024, WebGPU guarantees 256). */
export const ROW_MAX_WG = 256;
/** The narrowest (a warp of most GPUs). */
const ROW_MIN_WG = 32;
/** Columns per lane a row's width aims at. */
const ROW_PER_LANE = 4;

/** The workgroup width of a row kernel over rows of `cols`: a power of two in ROW_MIN_WG..ROW_MAX_WG. */
export function rowWidth(cols: number): number {
  const want = 2 ** Math.ceil(Math.log2(Math.max(1, cols / ROW_PER_LANE)));
  return Math.min(ROW_MAX_WG, Math.max(ROW_MIN_WG, want));
}

/**
 * WGSL for a workgroup of `width` lanes: `ROW_WG`, `red` scratch, `reduceSum(lid, v)` and `reduceMax(lid, v)`
 * (every invocation gets the result; call from uniform control flow), and `rowIndex(wg, nwg)` for a `rowGrid`
 * dispatch.
 */
export const rowsWgsl = (width: number): string => /* wgsl */ `
const ROW_WG: u32 = ${width}u;
var<workgroup> red: array<f32, ${width}>;

// The leading barrier is needed on llvmpipe (GLES): with only the trailing one, a second reduction in a row
// overwrote red[0] before every invocation had read the first one's result (LayerNorm's variance went wrong).
fn reduceSum(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = ROW_WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduceMax(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = ROW_WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn rowIndex(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.x + wg.y * nwg.x; }
`;

/**
 * WGSL declarations of a kernel's storage bindings in dispatch order (`name` read-only, `name!` read_write,
 * all array<f32>), then `P: Params` as the uniform after them.
 */
export function bindingsWgsl(names: string[]): string {
  const decls = names.map((raw, i) => {
    const rw = raw.endsWith('!');
    const name = rw ? raw.slice(0, -1) : raw;
    return `@group(0) @binding(${i}) var<storage, ${rw ? 'read_write' : 'read'}> ${name}: array<f32>;`;
  });
  return `${decls.join('\n')}\n@group(0) @binding(${names.length}) var<uniform> P: Params;\n`;
}

/** A row kernel compiled for a workgroup width (`rowWidth(cols)`, or ROW_MAX_WG for a fixed one). */
export type RowKernel = (width: number) => GpuKernel;

/**
 * A row kernel: `params` is its `struct Params` (with a `rows` and a `cols` field), `names` its storage
 * bindings (bindingsWgsl), and `body` runs with `n` (the row), `o` (its offset n * cols), `C` (cols as f32),
 * `lid` and `ROW_WG` (the width) in scope, in uniform control flow. Each width is compiled once.
 */
export function rowKernel(label: string, params: string, names: string[], body: string): RowKernel {
  return perWidth(label, (width) => rowKernelCode(width, params, names, body));
}

/** A kernel family over workgroup widths: `code(width)` compiled once per width, the width in its label. */
function perWidth(label: string, code: (width: number) => string): RowKernel {
  const byWidth = new Map<number, GpuKernel>();
  return (width) => {
    let k = byWidth.get(width);
    if (k === undefined) {
      k = { label: width === ROW_MAX_WG ? label : `${label} (${width} lanes)`, code: code(width) };
      byWidth.set(width, k);
    }
    return k;
  };
}

function rowKernelCode(width: number, params: string, names: string[], body: string): string {
  return /* wgsl */ `
${params}
${bindingsWgsl(names)}
${rowsWgsl(width)}
@compute @workgroup_size(ROW_WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n = rowIndex(wg, nwg);
  if (n >= P.rows) { return; }
  let o = n * P.cols;
  let C = f32(P.cols);
  ${body}
}
`;
}

/** Workgroups for one per row (2-D beyond the device's per-dimension limit; rowIndex >= rows exits). */
export function rowGrid(ctx: GpuContext, rows: number): [number, number, number] {
  return grid(ctx, rows, 1);
}

/**
 * Throws when an array a dispatch writes shares its buffer with another of its bindings (WebGPU refuses a
 * read_write binding aliasing any other); arrays only read may alias each other.
 */
export function distinct(kernel: string, written: Record<string, GpuArray>, read: Record<string, GpuArray>): void {
  const all = Object.entries({ ...read, ...written });
  for (const [w, arr] of Object.entries(written)) {
    const other = all.find(([name, a]) => name !== w && a.buffer === arr.buffer);
    if (other !== undefined) {
      throw new RangeError(`${kernel}: ${w} and ${other[0]} are the same buffer (the GPU kernels do not run in place)`);
    }
  }
}
