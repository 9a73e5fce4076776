/**
 * The layer-input Hessian of GPTQ/OWQ, H = (2/N) Σ_n X_n^T X_n over N calibration sequences, kept as a
 * running average exactly as the reference accumulates it (in fp32, one sequence at a time):
 *   H *= n / (n + 1);  n += 1;  X' = sqrt(2 / n) X;  H += X'^T X'
 * X_n is [T, K] (one sequence's inputs to the linear), H is [K, K].
 *
 * The update is the kernels' symmetric rank-k update (`syrk`: cblas_ssyrk on the host, half the multiply-adds of
 * the full GEMM), which promises only H's upper triangle; `values()` mirrors it into the lower one once, when H is
 * read. Read H through `values()`, not `h` (whose lower triangle is stale on the host).
 *
 * H lives on the device of the activations it is built from (the kernels of that storage: native on the host,
 * WebGPU on the GPU), so a model on the GPU accumulates its Hessians there and only H is read back. H and the
 * scratch X' are kept out of the GPU scopes of the forwards that feed them (src/tensor/device.ts) until `free`.
 */
import { allocLike, type Storage } from '../tensor/tensor.js';
import { hostValues, keep, kernelsFor, release } from '../tensor/device.js';

export class Hessian {
  readonly h: Storage;
  /** Sequences accumulated so far (N). */
  samples = 0;
  private scaled: Storage | null = null;

  /** A zero H [size, size] on the device of `like` (the host when omitted). */
  constructor(
    readonly size: number,
    like: Storage = new Float32Array(0),
  ) {
    this.h = keep(allocLike(like, size * size));
  }

  /** Adds sequences x [count, T, K] (count = x.length / (T * K)), one at a time in order; x on H's device. */
  add(x: Storage, seq: number): void {
    if (x.constructor !== this.h.constructor)
      throw new TypeError(
        `Hessian.add: activations ${x.constructor.name} on another device than H ${this.h.constructor.name}`,
      );
    const k = this.size;
    const kernels = kernelsFor(this.h);
    const rows = seq * k;
    if (this.scaled?.length !== rows) {
      release(this.scaled);
      this.scaled = keep(allocLike(this.h, rows));
    }
    const scaled = this.scaled;
    for (let off = 0; off < x.length; off += rows) {
      kernels.affine(this.h, this.h, Math.fround(this.samples / (this.samples + 1)), 0);
      this.samples += 1;
      kernels.copy(x, off, scaled, 0, rows);
      kernels.affine(scaled, scaled, Math.fround(Math.sqrt(2 / this.samples)), 0);
      // upper triangle of H [K, K] += X'^T [K, T] @ X' [T, K]
      kernels.syrk(scaled, this.h, { n: k, k: seq, alpha: 1, beta: 1 });
    }
  }

  /** H on the host, symmetric (read back from the GPU; on the host the array itself, its lower triangle rewritten). */
  async values(): Promise<Float32Array> {
    const h = (await hostValues(this.h)) as Float32Array;
    mirrorUpper(h, this.size);
    return h;
  }

  /** Frees H and the scratch on the GPU (no-op on the host); the Hessian is unusable after. */
  free(): void {
    release(this.h);
    release(this.scaled);
    this.scaled = null;
  }
}

const MIRROR_TILE = 64;

/**
 * a[i, j] = a[j, i] for every i > j of the row-major [n, n] matrix a: the upper triangle copied into the lower, by
 * tiles of MIRROR_TILE (the column-strided reads of a plain sweep miss the cache on an 11008^2 Hessian).
 */
function mirrorUpper(a: Float32Array, n: number): void {
  for (let i0 = 0; i0 < n; i0 += MIRROR_TILE) {
    const i1 = Math.min(i0 + MIRROR_TILE, n);
    for (let j0 = 0; j0 <= i0; j0 += MIRROR_TILE) {
      for (let i = i0; i < i1; i++) {
        const j1 = Math.min(j0 + MIRROR_TILE, i);
        for (let j = j0; j < j1; j++) a[i * n + j] = a[j * n + i];
      }
    }
  }
}
