/**
 * Key/value cache for generation (batch 1): per layer, preallocated [Tmax, Hkv, D] buffers; each step
 * appends its new keys/values and attends over a zero-copy view of everything cached so far.
 */
import type { FloatArray } from '../native/types.js';
import { Tensor, zeros, type DType } from '../tensor/tensor.js';

export class KVCache {
  /** Number of positions already cached. */
  length = 0;
  private readonly keys: FloatArray[];
  private readonly values: FloatArray[];
  private readonly rowSize: number;

  constructor(
    layers: number,
    readonly maxLength: number,
    kvHeads: number,
    headDim: number,
    dtype: DType,
  ) {
    this.rowSize = kvHeads * headDim;
    this.keys = Array.from({ length: layers }, () => zeros([maxLength * this.rowSize], dtype).data);
    this.values = Array.from({ length: layers }, () => zeros([maxLength * this.rowSize], dtype).data);
  }

  /** Appends k, v [1, T, Hkv, D] of `layer` and returns views [1, length + T, Hkv, D] of the whole cache. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const [batch, t, kvHeads, headDim] = k.shape;
    if (batch !== 1) throw new RangeError(`KVCache: generation with a cache supports batch 1, got ${batch}`);
    const end = this.length + t;
    if (end > this.maxLength) throw new RangeError(`KVCache: ${end} positions exceed the cache size ${this.maxLength}`);
    this.keys[layer].set(k.data, this.length * this.rowSize);
    this.values[layer].set(v.data, this.length * this.rowSize);
    const shape = [1, end, kvHeads, headDim];
    return {
      k: new Tensor(this.keys[layer].subarray(0, end * this.rowSize), shape),
      v: new Tensor(this.values[layer].subarray(0, end * this.rowSize), shape),
    };
  }

  /** Marks `t` more positions as cached; called once per forward, after every layer appended. */
  advance(t: number): void {
    this.length += t;
  }
}
