/**
 * Devices of tensors: the host (Float32Array / Float64Array) and the WebGPU device (GpuArray, src/gpu/array.ts).
 * Ops run on the device of their inputs and refuse mixed ones (`kernelsOn`); moving is explicit: `toGpu` uploads,
 * `toHost` reads back (asynchronously: the only asynchronous step of the GPU backend).
 *
 * Lifetimes on the GPU are by scope (`scoped`, re-exported here so model code need not know the backend): host
 * arrays are garbage-collected, so `keep` and `release` do nothing for them.
 */
import { GpuArray, type GpuContext, keep as keepGpu, release as releaseGpu, scoped } from '../gpu/array.js';
import { refuseHalf } from '../gpu/dispatch.js';
import { gpuKernels } from '../gpu/kernels.js';
import { kernelsFor as hostKernelsFor } from '../native/addon.js';
import type { FloatArray, Kernels } from '../native/types.js';
import type { Storage, Tensor } from './tensor.js';

export { scoped };

/** The kernels for storage on its device: native (f32), reference (f64) or WebGPU. */
export function kernelsFor(s: Storage): Kernels<Storage> {
  if (s instanceof GpuArray) return gpuKernels as Kernels<Storage>;
  return hostKernelsFor(s) as Kernels<Storage>;
}

function kindOf(s: Storage): string {
  return s instanceof GpuArray ? 'gpu' : s instanceof Float64Array ? 'f64' : 'f32';
}

/** Throws when the tensors are not all on one device with one dtype, naming the op. */
export function checkSameDevice(op: string, tensors: readonly (Tensor | null | undefined)[]): void {
  const present = tensors.filter((t): t is Tensor => t != null);
  const first = present[0];
  for (const t of present) {
    if (kindOf(t.storage) !== kindOf(first.storage)) {
      const what = t.device !== first.device ? 'device' : 'dtype';
      throw new TypeError(`${op}: ${what} mismatch (${first} vs ${t}); move tensors with toGpu / toHost first`);
    }
  }
}

/** The kernels of the tensors' device, after checking they share it (and their dtype). */
export function kernelsOn(op: string, ...tensors: (Tensor | null | undefined)[]): Kernels<Storage> {
  checkSameDevice(op, tensors);
  return kernelsFor(tensors.find((t) => t != null)!.storage);
}

/** Storage like `like` (same device) holding the host values `host` (uploaded when `like` is on the GPU). */
export function onDeviceOf(like: Storage, host: FloatArray): Storage {
  if (!(like instanceof GpuArray)) return host;
  if (!(host instanceof Float32Array)) throw new TypeError('onDeviceOf: only f32 data goes to the GPU');
  return like.ctx.upload(host);
}

/** `s` as it is when host, else uploaded to the device of `ctx` (f64 refused: gradient checks stay on the host). */
export function uploadTo(ctx: GpuContext, s: Storage): GpuArray {
  if (s instanceof GpuArray) return s;
  if (s instanceof Float64Array) throw new TypeError('toGpu: f64 tensors (gradient checks) stay on the host');
  return ctx.upload(s);
}

/** Moves a leaf tensor (a parameter) to the GPU in place; a no-op when it is there. The copy outlives scopes. */
export function toGpu(t: Tensor, ctx: GpuContext): Tensor {
  if (t.storage instanceof GpuArray) return t;
  t.replaceStorage(keepGpu(uploadTo(ctx, t.storage)));
  return t;
}

/** The values of storage on the host (a copy for GPU storage, the array itself for host storage). */
export async function hostValues(s: Storage): Promise<FloatArray> {
  return s instanceof GpuArray ? s.ctx.read(s) : s;
}

/** The first element of each storage, with one read-back for all of them when they are on the GPU. */
export async function readScalars(list: readonly Storage[]): Promise<number[]> {
  const gpu = list.find((s): s is GpuArray => s instanceof GpuArray);
  if (gpu === undefined) return list.map((s) => (s as FloatArray)[0]);
  const packed = gpu.ctx.zeros(list.length);
  list.forEach((s, i) => gpuKernels.copy(s as GpuArray, 0, packed, i, 1));
  const values = await gpu.ctx.read(packed);
  releaseGpu(packed);
  return Array.from(values);
}

/** A tensor's values on the host. */
export function toHost(t: Tensor): Promise<FloatArray> {
  return hostValues(t.storage);
}

/** Storage outlives every open scope (GPU) until `release`; host storage: no-op. Returns it. */
export function keep<S extends Storage>(s: S): S {
  if (s instanceof GpuArray) keepGpu(s);
  return s;
}

/** Frees GPU storage now (host storage: no-op, the garbage collector does it). */
export function release(s: Storage | null): void {
  if (s instanceof GpuArray) releaseGpu(s);
}

/** Overwrites storage with host values of the same length (uploaded for GPU storage). */
export function assign(s: Storage, values: Float32Array): void {
  if (values.length !== s.length) throw new RangeError(`assign: ${values.length} values for ${s.length} elements`);
  if (s instanceof GpuArray) {
    refuseHalf('assign', s);
    if (values.length > 0)
      s.ctx.device.queue.writeBuffer(s.buffer, 0, values.buffer, values.byteOffset, values.byteLength);
  } else s.set(values);
}

/**
 * The most elements one tensor holds on the device of `s` for every kernel to bind it whole (the GPU's binding
 * limit; unbounded on the host). Larger tensors work up to the GPU's maxBufferSize where the kernels split them
 * (src/gpu/windows.ts); batches sized under this take one dispatch per kernel.
 */
export function bindingElementsOn(s: Storage): number {
  return s instanceof GpuArray ? Math.floor(s.ctx.bindingLimit / 4) : Number.POSITIVE_INFINITY;
}

/** A zero-copy view of the first n elements. */
export function prefixOf(s: Storage, n: number): Storage {
  return s instanceof GpuArray ? s.prefix(n) : s.subarray(0, n);
}
