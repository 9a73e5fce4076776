/**
 * One compute dispatch of a WGSL kernel: the pipeline compiled once per (device, kernel), the storage
 * bindings in order (binding 0..n-1 of group 0), the kernel's parameters as a uniform at binding n, and the
 * workgroup grid. Each dispatch is submitted at once: the backend relies on that for reusing pooled buffers and
 * the per-size uniform buffers right after use (queue order is program order; src/gpu/array.ts).
 *
 * A kernel's WGSL declares its bindings as `@group(0) @binding(i)` in the order `dispatch` receives them and,
 * when it has parameters, `@group(0) @binding(n) var<uniform> P: Params;` (a struct of 4-byte fields, padded
 * to 16 bytes by `params`).
 *
 * A binding is an array (bound whole: over the binding limit it is refused, naming the kernel), a raw pooled
 * buffer, or a `Window` of an array (src/gpu/windows.ts: the kernels that split arrays over the limit bind the part
 * a chunk touches, from its first element rounded down to the offset alignment).
 */
import { bindingBytes, checkLive, GpuArray, type GpuContext } from './array.js';
import { Usage } from './buffers.js';
import type { HalfFormat } from './half.js';
import { overLimit, Window } from './windows.js';

export interface GpuKernel {
  /** Names the kernel in errors and in Dawn's labels. */
  label: string;
  /** WGSL with a `main` compute entry point. */
  code: string;
  /** The bindings the kernel reads as half storage (src/gpu/half.ts), by index; every other array must be f32. */
  half?: Readonly<Record<number, HalfFormat>>;
}

/** What a dispatch binds: device arrays, windows of them, or raw pooled buffers the kernel uploaded (indices, codes). */
export type Binding = GpuArray | GPUBuffer | Window;

const pipelines = new WeakMap<GPUDevice, Map<GpuKernel, GPUComputePipeline>>();
const uniforms = new WeakMap<GPUDevice, Map<number, GPUBuffer>>();

function pipelineOf(device: GPUDevice, kernel: GpuKernel): GPUComputePipeline {
  let byKernel = pipelines.get(device);
  if (byKernel === undefined) {
    byKernel = new Map();
    pipelines.set(device, byKernel);
  }
  let p = byKernel.get(kernel);
  if (p === undefined) {
    const module = device.createShaderModule({ label: kernel.label, code: kernel.code });
    p = device.createComputePipeline({ label: kernel.label, layout: 'auto', compute: { module, entryPoint: 'main' } });
    byKernel.set(kernel, p);
  }
  return p;
}

/** The uniform buffer of `bytes` (one per size per device, rewritten before each dispatch that uses it). */
function uniformOf(device: GPUDevice, bytes: number): GPUBuffer {
  let bySize = uniforms.get(device);
  if (bySize === undefined) {
    bySize = new Map();
    uniforms.set(device, bySize);
  }
  let u = bySize.get(bytes);
  if (u === undefined) {
    u = device.createBuffer({ label: `params ${bytes}`, size: bytes, usage: Usage.UNIFORM | Usage.COPY_DST });
    bySize.set(bytes, u);
  }
  return u;
}

/**
 * Packs parameters as a uniform struct: integers as u32 (i32 when negative), and `f32(x)` values as f32,
 * padded to a multiple of 16 bytes.
 */
export function params(...values: (number | F32)[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((values.length * 4) / 16) * 16));
  const u = new Uint32Array(buf);
  const i = new Int32Array(buf);
  const f = new Float32Array(buf);
  values.forEach((v, k) => {
    if (v instanceof F32) f[k] = v.value;
    else if (!Number.isInteger(v)) throw new TypeError(`params: ${v} is not an integer (wrap floats in f32())`);
    else if (v < 0) i[k] = v;
    else u[k] = v;
  });
  return buf;
}

export class F32 {
  constructor(readonly value: number) {}
}

/** Marks a float parameter for `params`. */
export const f32 = (value: number): F32 => new F32(value);

/** Workgroups along x and y covering `invocations` in workgroups of `size` (x capped by the device's limit). */
export function grid(ctx: GpuContext, invocations: number, size: number): [number, number, number] {
  const groups = Math.ceil(invocations / size);
  const maxX = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= maxX) return [Math.max(1, groups), 1, 1];
  return [maxX, Math.ceil(groups / maxX), 1];
}

/**
 * WGSL for a flat invocation index over a `grid()` dispatch of workgroups of `size`:
 * `let i = flatIndex(gid, nwg);` with `@builtin(global_invocation_id) gid` and `@builtin(num_workgroups) nwg`.
 */
export const flatIndexWgsl = (size: number): string => /* wgsl */ `
fn flatIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * ${size}u; }
`;

/**
 * Throws when array `b` at binding i is not in the format the kernel reads there: half storage (frozen weights)
 * is read only where a kernel declares it.
 */
export function checkFormat(kernel: GpuKernel, i: number, b: GpuArray): void {
  const want = kernel.half?.[i] ?? 'f32';
  if (b.format === want) return;
  if (want === 'f32') refuseHalf(kernel.label, b);
  throw new TypeError(`${kernel.label}: input ${i} is ${b.format}, the kernel was built to read ${want} there`);
}

/** Throws, naming the op, when `arr` is half storage: every op but the few that declare it reads f32 only. */
export function refuseHalf(op: string, arr: GpuArray): void {
  if (arr.format === 'f32') return;
  throw new TypeError(
    `${op}: a GPU array of ${arr.format} half storage (a frozen weight) was passed; ${op} reads f32 only ` +
      '(half storage is read by the gemm as its weight operand, by the embedding lookup and by the packed weight kernels)',
  );
}

/**
 * The buffer range binding i covers: an array's `length` elements (in whole words; its buffer may be longer), a
 * window's range (windows.ts), the bytes a raw pooled buffer was acquired for (its pool class may be longer). Refuses released arrays, arrays not in the format the kernel
 * reads there, and whole bindings over the limit.
 */
function bufferBinding(ctx: GpuContext, kernel: GpuKernel, i: number, b: Binding): GPUBufferBinding {
  if (b instanceof Window) {
    checkLive(b.array, kernel.label);
    checkFormat(kernel, i, b.array);
    return { buffer: b.array.buffer, offset: b.offsetBytes, size: b.bytes };
  }
  if (b instanceof GpuArray) {
    checkLive(b, kernel.label);
    checkFormat(kernel, i, b);
  }
  const [buffer, size] = b instanceof GpuArray ? [b.buffer, bindingBytes(b.length, b.format)] : [b, ctx.askedBytes(b)];
  if (size > ctx.bindingLimit) throw overLimit(kernel.label, size, ctx);
  return { buffer, offset: 0, size };
}

/** Records and submits one dispatch. Refuses arrays that were released. */
export function dispatch(
  ctx: GpuContext,
  kernel: GpuKernel,
  bindings: Binding[],
  uniform: ArrayBuffer | null,
  groups: [number, number, number],
): void {
  if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
  const { device } = ctx;
  const entries: GPUBindGroupEntry[] = bindings.map((b, i) => ({
    binding: i,
    resource: bufferBinding(ctx, kernel, i, b),
  }));
  if (uniform !== null) {
    const u = uniformOf(device, uniform.byteLength);
    device.queue.writeBuffer(u, 0, uniform);
    entries.push({ binding: bindings.length, resource: { buffer: u } });
  }
  const pipeline = pipelineOf(device, kernel);
  const bind = device.createBindGroup({ label: kernel.label, layout: pipeline.getBindGroupLayout(0), entries });
  const enc = device.createCommandEncoder({ label: kernel.label });
  const pass = enc.beginComputePass({ label: kernel.label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(...groups);
  pass.end();
  device.queue.submit([enc.finish()]);
}

/** Throws a RangeError like the native addon's when `arr` holds fewer than `n` elements. */
export function need(kernel: string, name: string, arr: { length: number }, n: number): void {
  if (arr.length < n) throw new RangeError(`${kernel}: ${name} has ${arr.length} elements, needs at least ${n}`);
}
