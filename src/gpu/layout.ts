/**
 * Host-side layout helpers of the strided kernels (broadcasting binary ops, sumTo): the element counts the
 * reference validates with, and the simplification of a strided layout before it goes into a uniform
 * (size-1 dims dropped, adjacent dims merged where every operand is contiguous across them), so that a
 * [B, T, C] + [C] add decomposes its flat index over 2 dims instead of 3. Ranks are at most MAX_RANK (8).
 */

export const MAX_RANK = 8;

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Elements a strided operand spans: 0 when empty, else 1 + sum((shape[d] - 1) * stride[d]) (as ref.ts). */
export function span(shape: readonly number[], strides: readonly number[]): number {
  if (shape.some((s) => s === 0)) return 0;
  return 1 + shape.reduce((acc, s, d) => acc + (s - 1) * strides[d], 0);
}

/** A shape with one stride vector per operand. */
export interface Strided {
  shape: number[];
  strides: number[][];
}

/**
 * The same index set in fewer dims: size-1 dims dropped, dim d merged into d + 1 when every operand has
 * stride[d] == stride[d + 1] * shape[d + 1] (contiguous across the two, or broadcast in both). Row-major order of
 * the visited elements is kept.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): Strided {
  const out: Strided = { shape: [], strides: strides.map(() => []) };
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = out.shape.length - 1;
    const merge = last >= 0 && strides.every((s, k) => out.strides[k][last] === s[d] * shape[d]);
    if (merge) {
      out.shape[last] *= shape[d];
      strides.forEach((s, k) => {
        out.strides[k][last] = s[d];
      });
    } else {
      out.shape.push(shape[d]);
      strides.forEach((s, k) => out.strides[k].push(s[d]));
    }
  }
  return out;
}

/** Throws when a layout has more dims than the kernels' uniforms hold. */
export function checkRank(kernel: string, rank: number): void {
  if (rank > MAX_RANK) throw new RangeError(`${kernel}: rank ${rank} exceeds the GPU kernels' limit of ${MAX_RANK}`);
}

/** `values` padded with zeros to MAX_RANK (an `array<vec4<u32>, 2>` of the uniform). */
export function padDims(values: readonly number[]): number[] {
  return [...values, ...new Array<number>(MAX_RANK - values.length).fill(0)];
}

/** WGSL for element `d` (a u32 expression) of the uniform field `P.<field>: array<vec4<u32>, 2>` (MAX_RANK u32). */
export function dimAt(field: string, d: string): string {
  return `P.${field}[(${d}) >> 2u][(${d}) & 3u]`;
}

/** Row-major element strides of a contiguous tensor of `shape`. */
export function denseStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}
