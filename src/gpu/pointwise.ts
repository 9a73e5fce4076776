/**
 * The shared shape of the 1-D kernels (elementwise ops, AdamW, the cross-entropy gradient, embedding lookup):
 * one invocation per element, workgroups of 256 over a `grid()` (more than 65535 workgroups fold into y), the
 * element count `n` as the uniform's first field, the kernel's own parameters after it. `pointwise()` writes
 * the WGSL around a body that reads the flat index `i`; `runPointwise()` dispatches it.
 *
 * Aliasing: a buffer bound read_write and also bound (read or read_write) in the same dispatch is a WebGPU
 * validation error that is reported asynchronously (the dispatch silently does nothing), so it is resolved on
 * the host first: an input that is the output (out = x, the contract's in-place calls) is read through the
 * output binding by a variant of the kernel compiled on first use (spec.inPlace), any other sharing is refused.
 *
 * Arrays over the binding limit (src/gpu/windows.ts): the body indexes with the global i, and every binding
 * `NAME[...]` is read as `NAME[P.o_NAME + ...]` (a half binding's `NAME_at(...)` as `NAME_at(P.o_NAME + ...)`,
 * the origin in its own elements), its origin in the uniform (after the kernel's own fields, with
 * `i0`, the chunk's first index). The bindings declared `flat` (read or written at element i only) split the
 * dispatch into chunks of i whose windows fit the limit; the others are bound as the caller gives them: whole, or a
 * Window it planned (an embedding table's rows).
 */
import { checkLive, GpuArray, type GpuContext } from './array.js';
import { type Binding, dispatch, type F32, flatIndexWgsl, type GpuKernel, grid, params } from './dispatch.js';
import { enableWgsl, formatOf, type HalfFormat, loadWgsl, type ReadPath } from './half.js';
import { chunksOf, originOf, planChunks, type Reach, Window, windowOf } from './windows.js';

/** Invocations per workgroup of every 1-D kernel. */
export const WG = 256;

/** A storage binding: its WGSL name, access and element type (f32 unless given). */
export interface StorageDecl {
  name: string;
  access: 'read' | 'read_write';
  type?: 'f32' | 'u32' | 'i32';
  /** Read or written at element i only (`NAME[i]`, `NAME_at(i)`): split with the index when over the binding limit. */
  flat?: boolean;
  /** A read binding of floats in this read path (src/gpu/half.ts): the body reads it as `NAME_at(i)`. */
  read?: ReadPath;
}

export interface PointwiseSpec {
  label: string;
  /** Storage bindings 0..k-1 in the order runPointwise receives them. */
  bindings: StorageDecl[];
  /** Uniform fields after `n: u32`, e.g. `alpha: f32, beta: f32` (4-byte fields; arrays of vec4 after padding). */
  params?: string;
  /** WGSL functions the body calls. */
  prelude?: string;
  /** Statements run for each `i < P.n` (`i: u32`); bindings are read as `NAME[...]`. */
  body: string;
  /**
   * The output may be an input (out = x in place): invocation i reads only element i of the aliased input, so
   * reading it from the output binding is safe. Without it, an aliased call is refused.
   */
  inPlace?: boolean;
}

/** A pointwise kernel family: the plain kernel and, compiled on first use, its in-place variants. */
export interface Pointwise {
  spec: PointwiseSpec;
  variants: Map<string, GpuKernel>;
}

/** WGSL declarations of storage bindings 0..k-1 and the uniform `P` at binding k. */
export function bindingsWgsl(bindings: StorageDecl[], fields: string): string {
  const decls = bindings.map((b, k) =>
    b.read !== undefined
      ? loadWgsl(b.read, k, b.name)
      : `@group(0) @binding(${k}) var<storage, ${b.access}> ${b.name}: array<${b.type ?? 'f32'}>;`,
  );
  const enable = enableWgsl(bindings.map((b) => b.read ?? 'f32'));
  return `${enable}struct Params { ${fields} }\n${decls.join('\n')}\n@group(0) @binding(${bindings.length}) var<uniform> P: Params;`;
}

/** The half-storage bindings of a kernel over `bindings` (GpuKernel.half). */
function halfOf(bindings: StorageDecl[]): Record<number, HalfFormat> {
  const half: Record<number, HalfFormat> = {};
  bindings.forEach((b, k) => {
    const format = b.read === undefined ? 'f32' : formatOf(b.read);
    if (format !== 'f32') half[k] = format;
  });
  return half;
}

/** A 1-D kernel family: `body` runs once per element index i < P.n. */
export function pointwise(spec: PointwiseSpec): Pointwise {
  return { spec, variants: new Map() };
}

/** The kernel with read bindings `aliased[r] = w` read from the output binding w instead (no binding of their own). */
function variant(pw: Pointwise, aliased: Map<string, string>): GpuKernel {
  const key = [...aliased].map(([r, w]) => `${r}=${w}`).join(',');
  let kernel = pw.variants.get(key);
  if (kernel !== undefined) return kernel;
  const { spec } = pw;
  let body = spec.body;
  for (const [r, w] of aliased) body = body.replace(new RegExp(`\\b${r}\\[`, 'g'), `${w}[`);
  const bound = spec.bindings.filter((b) => !aliased.has(b.name));
  for (const b of bound) {
    body = body
      .replace(new RegExp(`\\b${b.name}\\[`, 'g'), `${b.name}[P.o_${b.name} + `)
      .replace(new RegExp(`\\b${b.name}_at\\(`, 'g'), `${b.name}_at(P.o_${b.name} + `);
  }
  const origins = bound.map((b) => `o_${b.name}: u32,`).join(' ');
  const fields = `n: u32, ${spec.params ?? ''} i0: u32, ${origins}`;
  const code = /* wgsl */ `${bindingsWgsl(bound, fields)}
${flatIndexWgsl(WG)}
${spec.prelude ?? ''}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = P.i0 + flatIndex(gid, nwg);
  if (i >= P.n) { return; }
  ${body}
}
`;
  kernel = { label: spec.label, code, half: halfOf(bound) };
  pw.variants.set(key, kernel);
  return kernel;
}

const bufferOf = (b: Binding): GPUBuffer =>
  b instanceof GpuArray ? b.buffer : b instanceof Window ? b.array.buffer : b;

/**
 * Dispatches a pointwise kernel over the indices [begin, n) (nothing when empty; begin 0 unless given as
 * `[begin, n]`); `values` follow n in the uniform. An input sharing its buffer with an output is read through the
 * output (spec.inPlace) or refused; two outputs sharing a buffer are refused. Flat bindings over the binding limit
 * split the range into one dispatch per window.
 */
export function runPointwise(
  ctx: GpuContext,
  pw: Pointwise,
  bindings: Binding[],
  range: number | [number, number],
  ...values: (number | F32)[]
): void {
  const { spec } = pw;
  const [begin, n] = typeof range === 'number' ? [0, range] : range;
  for (const b of bindings) if (b instanceof GpuArray) checkLive(b, spec.label);
  const aliased = new Map<string, string>();
  const writes = spec.bindings.flatMap((b, k) => (b.access === 'read_write' ? [k] : []));
  spec.bindings.forEach((b, k) => {
    const w = writes.find((j) => j !== k && bufferOf(bindings[j]) === bufferOf(bindings[k]));
    if (w === undefined) return;
    if (b.access === 'read_write') {
      throw new RangeError(`${spec.label}: two outputs must not share a buffer (pass distinct arrays)`);
    }
    if (spec.inPlace !== true) {
      throw new RangeError(`${spec.label}: the output must not share its buffer with an input (pass distinct arrays)`);
    }
    aliased.set(b.name, spec.bindings[w].name);
  });
  if (n <= begin) return;
  const kernel = variant(pw, aliased);
  const kept = spec.bindings.flatMap((d, k) => (aliased.has(d.name) ? [] : [{ d, b: bindings[k] }]));
  const bound = kept.map((x) => x.b);
  const flat = new Map<number, Reach>();
  kept.forEach(({ d, b }, k) => {
    if (d.flat === true && b instanceof GpuArray) flat.set(k, { array: b, strides: [1], width: 1, base: begin });
  });
  const totals = [n - begin];
  for (const c of chunksOf(totals, planChunks(spec.label, totals, [...flat.values()]))) {
    const windows = bound.map((b, k) => {
      const r = flat.get(k);
      return r === undefined ? b : windowOf(r, c);
    });
    const i0 = begin + c.lo[0];
    const p = params(i0 + c.size[0], ...values, i0, ...windows.map(originOf));
    dispatch(ctx, kernel, windows, p, grid(ctx, c.size[0], WG));
  }
}

/** Throws when the array written read_write shares its buffer with an array the same dispatch reads. */
export function distinct(kernel: string, written: GpuArray, ...read: GpuArray[]): void {
  if (read.some((r) => r.buffer === written.buffer)) {
    throw new RangeError(`${kernel}: the output must not share its buffer with an input (pass distinct arrays)`);
  }
}
