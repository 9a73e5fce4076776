/**
 * Storage for an op's result that its kernel overwrites in full (a gemm with beta 0, an elementwise result, a
 * norm's output, a copy). Host fp32 storage is left uninitialized (Buffer.allocUnsafeSlow: its own ArrayBuffer,
 * never the shared pool), which skips the zero fill `allocLike` pays: about 0.35 ms per MiB on the 2-core bench
 * machine, most of the training step's time outside the kernels. Float64 storage (gradient checks, on the reference
 * kernels) and GPU storage come from `allocLike`, zeroed. A kernel that reads or accumulates into its output
 * (sumTo, the norms' dw / db, the embedding's scatter-add) keeps `allocLike`.
 */
import { allocLike, type Storage } from '../tensor/tensor.js';

export function allocOutput<S extends Storage>(like: S, n: number): S;
export function allocOutput(like: Storage, n: number): Storage {
  if (!(like instanceof Float32Array)) return allocLike(like, n);
  return new Float32Array(Buffer.allocUnsafeSlow(n * 4).buffer, 0, n);
}
