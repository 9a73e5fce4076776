/**
 * Key/value cache for generation (batch 1): per layer, preallocated [Tmax, Hkv, D] buffers on the device of the
 * first keys appended (host or GPU); each step appends its new keys/values and attends over a zero-copy view of
 * everything cached so far. The buffers outlive the per-token scopes of generation; `dispose` frees them.
 */
import { keep, kernelsFor, prefixOf, release } from '../tensor/device.js';
import { Tensor, allocLike, type DType, type Storage } from '../tensor/tensor.js';

export class KVCache {
  /** Number of positions already cached. */
  length = 0;
  private readonly keys: (Storage | null)[];
  private readonly values: (Storage | null)[];
  private readonly rowSize: number;

  constructor(
    layers: number,
    readonly maxLength: number,
    kvHeads: number,
    headDim: number,
    readonly dtype: DType,
  ) {
    this.rowSize = kvHeads * headDim;
    this.keys = new Array<Storage | null>(layers).fill(null);
    this.values = new Array<Storage | null>(layers).fill(null);
  }

  /** Appends k, v [1, T, Hkv, D] of `layer` and returns views [1, length + T, Hkv, D] of the whole cache. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const [batch, t, kvHeads, headDim] = k.shape;
    if (batch !== 1) throw new RangeError(`KVCache: generation with a cache supports batch 1, got ${batch}`);
    if (k.dtype !== this.dtype) throw new TypeError(`KVCache: ${k} does not match the cache's ${this.dtype}`);
    const end = this.length + t;
    if (end > this.maxLength) throw new RangeError(`KVCache: ${end} positions exceed the cache size ${this.maxLength}`);
    const size = this.maxLength * this.rowSize;
    this.keys[layer] ??= keep(allocLike(k.storage, size));
    this.values[layer] ??= keep(allocLike(v.storage, size));
    const keys = this.keys[layer];
    const values = this.values[layer];
    const kernels = kernelsFor(keys);
    kernels.copy(k.storage, 0, keys, this.length * this.rowSize, k.size);
    kernels.copy(v.storage, 0, values, this.length * this.rowSize, v.size);
    const shape = [1, end, kvHeads, headDim];
    return {
      k: new Tensor(prefixOf(keys, end * this.rowSize), shape),
      v: new Tensor(prefixOf(values, end * this.rowSize), shape),
    };
  }

  /** Marks `t` more positions as cached; called once per forward, after every layer appended. */
  advance(t: number): void {
    this.length += t;
  }

  /** Forgets every position from `length` on (one cached context scored against several continuations). */
  truncate(length: number): void {
    if (!(Number.isInteger(length) && length >= 0 && length <= this.length))
      throw new RangeError(`KVCache: cannot truncate ${this.length} cached positions to ${length}`);
    this.length = length;
  }

  /** Frees the buffers (on the GPU; host ones are collected). */
  dispose(): void {
    for (const s of [...this.keys, ...this.values]) release(s);
  }
}
