/**
 * The layer-input Hessian of GPTQ/OWQ, H = (2/N) Σ_n X_n^T X_n over N calibration sequences, kept as a
 * running average exactly as the reference accumulates it (in fp32, one sequence at a time):
 *   H *= n / (n + 1);  n += 1;  X' = sqrt(2 / n) X;  H += X'^T X'
 * X_n is [T, K] (one sequence's inputs to the linear), H is [K, K].
 */
import { loadNative } from '../native/addon.js';

export class Hessian {
  readonly h: Float32Array;
  /** Sequences accumulated so far (N). */
  samples = 0;
  private scaled: Float32Array = new Float32Array(0);

  constructor(readonly size: number) {
    this.h = new Float32Array(size * size);
  }

  /** Adds sequences x [count, T, K] (count = x.length / (T * K)), one at a time in order. */
  add(x: Float32Array, seq: number): void {
    const k = this.size;
    const native = loadNative();
    const rows = seq * k;
    if (this.scaled.length !== rows) this.scaled = new Float32Array(rows);
    for (let off = 0; off < x.length; off += rows) {
      native.affine(this.h, this.h, Math.fround(this.samples / (this.samples + 1)), 0);
      this.samples += 1;
      native.affine(x.subarray(off, off + rows), this.scaled, Math.fround(Math.sqrt(2 / this.samples)), 0);
      // H [K, K] += X'^T [K, T] @ X' [T, K]
      native.gemm(this.scaled, this.scaled, this.h, {
        batch: 1,
        m: k,
        n: k,
        k: seq,
        transA: true,
        transB: false,
        alpha: 1,
        beta: 1,
        strideA: 0,
        strideB: 0,
        strideC: 0,
      });
    }
  }
}
