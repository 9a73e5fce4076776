/**
 * Shared pieces of the row-wise kernels (norms, softmax, attention): one workgroup of ROW_WG invocations per
 * row, the row index over a 2-D grid (rows beyond 65535 workgroups), and a deterministic workgroup reduction.
 *
 * The reduction is a fixed tree in workgroup memory: each invocation first folds its strided elements
 * (column lid, lid + ROW_WG, ...) in order, then the ROW_WG partials are halved pairwise. The order never
 * depends on timing, so a kernel gives bit-identical results run to run; the error of an f32 sum of n terms
 * grows as ~(n / ROW_WG + log2 ROW_WG) ulps instead of n.
 */
import type { GpuArray, GpuContext } from './array.js';
import { type GpuKernel, grid } from './dispatch.js';

/** Invocations per row workgroup (a power of two; the device asks the adapter's 1024, WebGPU guarantees 256). */
export const ROW_WG = 256;

/**
 * WGSL: `red` scratch, `reduceSum(lid, v)` and `reduceMax(lid, v)` (every invocation gets the result; call
 * from uniform control flow), and `rowIndex(wg, nwg)` for a `rowGrid` dispatch.
 */
export const rowsWgsl = /* wgsl */ `
const ROW_WG: u32 = ${ROW_WG}u;
var<workgroup> red: array<f32, ${ROW_WG}>;

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

/**
 * A row kernel: `params` is its `struct Params` (with a `rows` and a `cols` field), `names` its storage
 * bindings (bindingsWgsl), and `body` runs with `n` (the row), `o` (its offset n * cols), `C` (cols as f32)
 * and `lid` in scope, in uniform control flow.
 */
export function rowKernel(label: string, params: string, names: string[], body: string): GpuKernel {
  const code = /* wgsl */ `
${params}
${bindingsWgsl(names)}
${rowsWgsl}
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
  return { label, code };
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
