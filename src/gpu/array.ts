/**
 * Device-resident f32 data: a GpuArray is `length` floats in a GPUBuffer of the process's device (the
 * storage of a GPU tensor, src/tensor/tensor.ts), or, for frozen weights, `length` 16-bit floats two to a word
 * (`format` f16 / bf16: src/gpu/half.ts; only the kernels that declare such a binding accept one). Buffers come
 * from a pool keyed by size class (`poolBytes`: 16-byte steps up to 4 KiB, then four classes per power of two,
 * so at most a quarter is slack), so a training
 * step that repeats the previous one's shapes creates no buffer, and one whose shapes vary (batches padded to
 * their longest example) reuses the classes it has seen instead of growing a buffer per length; new arrays
 * read as zeros, as the host's. A buffer may be longer than its array: kernels bind `length` elements.
 *
 * Lifetime is by scope (tf.tidy-like): `scoped(fn)` returns every array allocated while fn ran to the pool,
 * except those `keep()` took out (parameters, gradients, optimizer state, results read after the scope).
 * Arrays made outside any scope live until `release()`. A released array refuses to be bound again, so
 * a use after its scope ended is an error naming the kernel, never a silent read of reused memory.
 *
 * Size: one array is one buffer, up to the adapter's maxBufferSize (and 2^32 - 1 elements, the kernels' u32
 * indices). A kernel binds an array over the storage binding limit in windows (src/gpu/windows.ts); the limit
 * the kernels plan with is `bindingLimit`, the adapter's maxStorageBufferBindingSize unless lowered (tests lower
 * it so that small tensors split).
 *
 * Reuse right after release is safe: every write (queue.writeBuffer, clearBuffer, a dispatch) and every read
 * of the backend is submitted to the one queue in program order (src/gpu/dispatch.ts submits each dispatch at
 * once), and the queue runs them in that order.
 */
import { OptionError } from '../errors.js';
import { bf16ToF32Array, f16ToF32Array } from '../io/dtype.js';
import { Usage } from './buffers.js';
import type { GpuFormat, HalfFormat } from './half.js';

/** Bytes of one element of `format`. */
export const elementBytes = (format: GpuFormat): number => (format === 'f32' ? 4 : 2);

/** Byte size of a buffer for n elements (WebGPU refuses empty bindings; sizes are multiples of 16). */
export function bytesFor(n: number, format: GpuFormat = 'f32'): number {
  return Math.max(16, Math.ceil((n * elementBytes(format)) / 16) * 16);
}

/** Bytes a binding of n elements covers (whole 4-byte words, as WebGPU requires; at least 16). */
export function bindingBytes(n: number, format: GpuFormat): number {
  return Math.max(16, Math.ceil((n * elementBytes(format)) / 4) * 4);
}

/** Bytes up to which pool classes are exact multiples of 16. */
const EXACT_CLASSES_UP_TO = 4096;

/**
 * The pool's size class of a request of `bytes` (a multiple of 16): the request itself up to 4 KiB, else the
 * next of 2^e, 1.25 2^e, 1.5 2^e, 1.75 2^e (multiples of 16 from there on).
 */
export function poolBytes(bytes: number): number {
  if (bytes <= EXACT_CLASSES_UP_TO) return bytes;
  const step = 2 ** (Math.floor(Math.log2(bytes - 1)) - 2); // a quarter of the power of two below
  return Math.ceil(bytes / step) * step;
}

export class GpuArray {
  released = false;
  constructor(
    readonly ctx: GpuContext,
    readonly buffer: GPUBuffer,
    readonly length: number,
    /** The array this one is a prefix view of (views share the buffer and are never pooled). */
    readonly base: GpuArray | null = null,
    /** f32, or 16-bit floats two to a word (src/gpu/half.ts). */
    readonly format: GpuFormat = 'f32',
  ) {}

  /** The first `length` elements, same buffer (e.g. the filled part of a KV cache). */
  prefix(length: number): GpuArray {
    if (length > this.length) throw new RangeError(`GpuArray.prefix: ${length} > ${this.length}`);
    return new GpuArray(this.ctx, this.buffer, length, this.base ?? this, this.format);
  }

  toString(): string {
    return this.format === 'f32' ? `GpuArray(${this.length})` : `GpuArray(${this.length}, ${this.format})`;
  }
}

/** Buffer counters: `created` stays flat in steady state when the pool works. */
export interface PoolStats {
  created: number;
  reused: number;
  /** Bytes in buffers the pool holds, free or in use. */
  bytes: number;
}

const scopes: Set<GpuArray>[] = [];

/** Per-device state: the pool of free buffers by byte size. */
export class GpuContext {
  private readonly free = new Map<number, GPUBuffer[]>();
  readonly stats: PoolStats = { created: 0, reused: 0, bytes: 0 };

  /** WebGPU validation errors (a shader that does not compile, a bad binding) reported since the last read. */
  private readonly errors: string[] = [];

  private limit: number;

  /** The bytes each pooled buffer was last acquired for (a raw buffer's binding covers those, not its class). */
  private readonly asked = new WeakMap<GPUBuffer, number>();

  constructor(readonly device: GPUDevice) {
    this.limit = device.limits.maxStorageBufferBindingSize;
    // Dawn reports these asynchronously and the failed dispatch does nothing: they fail the next read-back.
    device.onuncapturederror = (e: GPUUncapturedErrorEvent) => {
      this.errors.push(e.error.message);
    };
  }

  /** The largest f32 array (one buffer: the adapter's maxBufferSize, at most 2^32 - 1 floats). */
  get maxElements(): number {
    return Math.min(Math.floor(this.device.limits.maxBufferSize / 4), 2 ** 32 - 1);
  }

  /** Bytes one storage binding may span: the adapter's maxStorageBufferBindingSize unless lowered. */
  get bindingLimit(): number {
    return this.limit;
  }

  /**
   * Lowers (or restores) the binding limit the kernels plan their windows with, e.g. so that tests split small
   * tensors: a multiple of 4 bytes, at least 4 times minStorageBufferOffsetAlignment, at most the adapter's.
   */
  set bindingLimit(bytes: number) {
    const { maxStorageBufferBindingSize: max, minStorageBufferOffsetAlignment: align } = this.device.limits;
    if (!Number.isInteger(bytes) || bytes % 4 !== 0 || bytes < 4 * align || bytes > max) {
      throw new RangeError(
        `GpuContext.bindingLimit: expected a multiple of 4 bytes in [${4 * align}, ${max}], got ${bytes}`,
      );
    }
    this.limit = bytes;
  }

  /**
   * A raw buffer of at least `bytes` (a multiple of 16) from the pool, contents undefined: its size class
   * (poolBytes), or `bytes` exactly where the class would exceed the adapter's maxBufferSize.
   */
  acquire(bytes: number, label: string): GPUBuffer {
    const cls = poolBytes(bytes);
    const size = cls <= this.device.limits.maxBufferSize ? cls : bytes;
    let buffer = this.free.get(size)?.pop();
    if (buffer !== undefined) this.stats.reused++;
    else {
      this.stats.created++;
      this.stats.bytes += size;
      buffer = this.device.createBuffer({ label, size, usage: Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC });
    }
    this.asked.set(buffer, bytes);
    return buffer;
  }

  /** The bytes a raw pooled buffer was acquired for (its whole size for a buffer from elsewhere). */
  askedBytes(buffer: GPUBuffer): number {
    return this.asked.get(buffer) ?? buffer.size;
  }

  /** Gives a raw buffer back to the pool. */
  recycle(buffer: GPUBuffer): void {
    const list = this.free.get(buffer.size);
    if (list === undefined) this.free.set(buffer.size, [buffer]);
    else list.push(buffer);
  }

  /** n zeros on the device, tracked by the innermost scope. */
  zeros(n: number, label = 'f32'): GpuArray {
    return this.make(n, label, true);
  }

  /** `data` copied to the device (queue.writeBuffer: mappedAtCreation crashes Dawn's GLES path). */
  upload(data: Float32Array, label = 'f32'): GpuArray {
    const arr = this.make(data.length, label, false);
    if (data.length > 0) this.device.queue.writeBuffer(arr.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return arr;
  }

  /** 16-bit patterns of `format` (src/gpu/half.ts exactHalf) copied to the device as half storage. */
  uploadHalf(bits: Uint16Array, format: HalfFormat, label: string = format): GpuArray {
    const arr = this.make(bits.length, label, false, format);
    if (bits.length > 0) {
      const padded = bits.byteLength % 4 === 0 ? bits : padTo4(bits);
      this.device.queue.writeBuffer(arr.buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
    }
    return arr;
  }

  private make(n: number, label: string, zero: boolean, format: GpuFormat = 'f32'): GpuArray {
    if (n > 2 ** 32 - 1 || bytesFor(n, format) > this.device.limits.maxBufferSize) {
      throw new OptionError(
        '--device',
        `a tensor of ${n} ${format} elements (${(bytesFor(n, format) / 2 ** 20).toFixed(1)} MiB) exceeds the ` +
          `GPU's largest buffer of ${(this.device.limits.maxBufferSize / 2 ** 20).toFixed(0)} MiB (maxBufferSize; ` +
          'one tensor is one buffer): use a smaller batch or the CPU',
      );
    }
    const created = this.stats.created;
    const buffer = this.acquire(bytesFor(n, format), label);
    if (zero && this.stats.created === created) {
      // A new buffer is zero already; a pooled one holds a released tensor's values.
      const enc = this.device.createCommandEncoder();
      enc.clearBuffer(buffer);
      this.device.queue.submit([enc.finish()]);
    }
    return track(new GpuArray(this, buffer, n, null, format));
  }

  /** A raw pooled buffer holding the bytes of `data` (indices, masks, codes); recycle it after the dispatch. */
  uploadRaw(data: ArrayBufferView, label: string): GPUBuffer {
    const buffer = this.acquire(Math.max(16, Math.ceil(data.byteLength / 16) * 16), label);
    if (data.byteLength > 0) {
      const padded = data.byteLength % 4 === 0 ? data : padTo4(data);
      this.device.queue.writeBuffer(buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
    }
    return buffer;
  }

  /** Reads `arr` back to the host (half storage widened to f32, exactly): the backend's only asynchronous step. */
  async read(arr: GpuArray): Promise<Float32Array> {
    checkLive(arr, 'read');
    await this.checkErrors();
    let out: Float32Array = new Float32Array(arr.length);
    if (arr.length === 0) return out;
    const bytes = bytesFor(arr.length, arr.format);
    const staging = this.device.createBuffer({ label: 'staging', size: bytes, usage: Usage.MAP_READ | Usage.COPY_DST });
    try {
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(arr.buffer, 0, staging, 0, bytes);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(Usage.MAP_READ);
      const mapped = staging.getMappedRange();
      if (arr.format === 'f32') out.set(new Float32Array(mapped, 0, arr.length));
      else {
        const bits = new Uint16Array(mapped, 0, arr.length);
        out = arr.format === 'f16' ? f16ToF32Array(bits) : bf16ToF32Array(bits);
      }
      staging.unmap();
    } finally {
      staging.destroy();
    }
    await this.checkErrors();
    return out;
  }

  /** Throws the validation errors the device reported (after the queue drained), naming the first. */
  private async checkErrors(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    if (this.errors.length === 0) return;
    const all = this.errors.splice(0);
    throw new Error(`gpu: the device reported ${all.length} error(s); the first: ${all[0]}`);
  }
}

function padTo4(data: ArrayBufferView): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}

function track(arr: GpuArray): GpuArray {
  scopes.at(-1)?.add(arr);
  return arr;
}

/** Throws when `arr` was released (its buffer may hold another tensor now). */
export function checkLive(arr: GpuArray, kernel: string): void {
  if (arr.released || arr.base?.released === true) {
    throw new Error(
      `${kernel}: a GPU array was used after it was released (its scope ended; keep() what outlives one)`,
    );
  }
}

/** Runs fn, then returns to the pool every array allocated during it that was not kept. Scopes nest. */
export function scoped<T>(fn: () => T): T {
  const mine = new Set<GpuArray>();
  scopes.push(mine);
  try {
    return fn();
  } finally {
    scopes.pop();
    for (const arr of mine) release(arr);
  }
}

/** Takes `arr` out of every open scope: it lives until release(). */
export function keep(arr: GpuArray): GpuArray {
  for (const s of scopes) s.delete(arr);
  return arr;
}

/** Returns the buffer of `arr` to the pool now (views and already-released arrays: no-op). */
export function release(arr: GpuArray): void {
  if (arr.released || arr.base !== null) return;
  arr.released = true;
  for (const s of scopes) s.delete(arr);
  arr.ctx.recycle(arr.buffer);
}
