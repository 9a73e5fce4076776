/**
 * Tensor: a shape over dense row-major storage: a Float32Array (the engine's dtype) or Float64Array (the
 * reference dtype of gradient checks) on the host, or a GpuArray (f32 on the WebGPU device,
 * src/gpu/array.ts). Its gradient lives on the same device. Autograd bookkeeping (`grad`, `node`) lives here
 * too so the tape stays a plain function over tensors; see src/autograd/tape.ts. Moving between devices is
 * explicit: src/tensor/device.ts.
 */
import { GpuArray } from '../gpu/array.js';
import type { HalfFormat } from '../gpu/half.js';
import type { FloatArray } from '../native/types.js';

/** Where a tensor's values live. */
export type Storage = FloatArray | GpuArray;
export type Device = 'cpu' | 'gpu';

export type DType = 'f32' | 'f64';

/** What the tape needs to know about how a tensor was made. */
export interface Node {
  op: string;
  inputs: Tensor[];
  /**
   * Given dL/d(output), returns dL/d(input) for each input (null where the input needs no gradient). `held(k)` is
   * the gradient the tape already holds for input k (null when none): an op may add its own into it and return it
   * (the embedding's scatter-add into the tied lm_head's dW), which the tape then does not add again.
   */
  backward(gradOut: Storage, held: (input: number) => Storage | null): (Storage | null)[];
}

export class Tensor {
  readonly shape: readonly number[];
  private store: Storage;
  /** True for leaves we train and for every tensor computed from one. */
  requiresGrad: boolean;
  grad: Storage | null = null;
  node: Node | null = null;
  /**
   * The 16-bit float format the values were read from (a checkpoint's F16 / BF16 tensor), else null: a frozen
   * weight's copy on the GPU may then be stored in it (src/models/move.ts moveFrozenWeight).
   */
  halfSource: HalfFormat | null = null;

  constructor(storage: Storage, shape: readonly number[], requiresGrad = false) {
    const n = numel(shape);
    if (storage.length !== n) {
      throw new RangeError(`Tensor: data has ${storage.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    this.store = storage;
    this.shape = Object.freeze([...shape]);
    this.requiresGrad = requiresGrad;
  }

  /** The values: a host typed array or a GpuArray. */
  get storage(): Storage {
    return this.store;
  }

  /**
   * Replaces the values by `to` (the same values on another device, as torch's module.to moves a
   * parameter): for a model's leaves, before any graph is built over them (src/tensor/device.ts).
   */
  replaceStorage(to: Storage): void {
    if (to.length !== this.store.length)
      throw new RangeError(`${this}: replacement storage has ${to.length} elements, expected ${this.store.length}`);
    if (this.node !== null) throw new Error(`${this}: only a leaf's storage can be replaced`);
    this.store = to;
    this.grad = null;
  }

  /** The host values; a GPU tensor throws (read it back with toHost in src/tensor/device.ts). */
  get data(): FloatArray {
    return hostArray(this.storage, this);
  }

  /** The host gradient (null when none); a GPU tensor's throws as `data` does. */
  get gradData(): FloatArray | null {
    return this.grad === null ? null : hostArray(this.grad, this);
  }

  get device(): Device {
    return this.storage instanceof GpuArray ? 'gpu' : 'cpu';
  }

  get dtype(): DType {
    return this.storage instanceof Float64Array ? 'f64' : 'f32';
  }

  get size(): number {
    return this.storage.length;
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}]${this.device === 'gpu' ? ', gpu' : ''})`;
  }
}

function hostArray(s: Storage, t: Tensor): FloatArray {
  if (s instanceof GpuArray) throw new Error(`${t} is on the GPU: read it back with \`await toHost(t)\``);
  return s;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** n zeros of the same dtype on the same device as `data`. */
export function allocLike<S extends Storage>(data: S, n: number): S;
export function allocLike(data: Storage, n: number): Storage {
  if (data instanceof GpuArray) return data.ctx.zeros(n);
  return data instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const n = numel(shape);
  return new Tensor(dtype === 'f64' ? new Float64Array(n) : new Float32Array(n), shape);
}

export function fromArray(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const data = dtype === 'f64' ? Float64Array.from(values) : Float32Array.from(values);
  return new Tensor(data, shape);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
