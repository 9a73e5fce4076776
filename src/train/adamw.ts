/**
 * AdamW (Loshchilov & Hutter; torch.optim.AdamW's update): for each parameter θ with gradient g at step t
 *   θ ← θ - lr·λ·θ                      (decoupled weight decay)
 *   m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²
 *   θ ← θ - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
 * State m, v in fp32 beside each parameter, on its device (the "fp32 master copies" are the parameters
 * themselves); the update is one `adamwMany` call per device over all the parameters, global-norm clipping
 * folded into it.
 */
import { hostValues, keep, kernelsFor, release } from '../tensor/device.js';
import type { Kernels } from '../native/types.js';
import { allocLike, type Storage, type Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export interface AdamWState {
  /** Optimizer steps taken (t). */
  step: number;
  m: Storage[];
  v: Storage[];
}

export class AdamW {
  state: AdamWState;

  constructor(
    readonly params: Tensor[],
    readonly options: AdamWOptions,
  ) {
    this.state = {
      step: 0,
      m: params.map((p) => keep(allocLike(p.storage, p.size))),
      v: params.map((p) => keep(allocLike(p.storage, p.size))),
    };
  }

  /** Bytes of optimizer state (m and v). */
  stateBytes(): number {
    return this.state.m.reduce((n, m) => n + m.length * 4 * 2, 0);
  }

  /**
   * One update with learning rate `lr` from each parameter's accumulated .grad, read as grad * gradScale
   * (clipScale's factor: torch's clip_grad_norm_ then step).
   */
  step(lr: number, gradScale = 1): void {
    const {
      betas: [beta1, beta2],
      eps,
      weightDecay,
    } = this.options;
    const t = ++this.state.step;
    const hp = { lr, beta1, beta2, eps, weightDecay, c1: 1 - beta1 ** t, c2: 1 - beta2 ** t, gradScale };
    for (const [kernels, at] of this.byDevice()) {
      const pick = (f: (i: number) => Storage) => at.map(f);
      kernels.adamwMany(
        pick((i) => this.params[i].storage),
        pick((i) => this.params[i].grad!),
        pick((i) => this.state.m[i]),
        pick((i) => this.state.v[i]),
        hp,
      );
    }
  }

  /** The indices of the parameters with a gradient, grouped by the kernels of their device (one group, normally). */
  private byDevice(): Map<Kernels<Storage>, number[]> {
    const groups = new Map<Kernels<Storage>, number[]>();
    this.params.forEach((p, i) => {
      if (p.grad === null) return;
      const k = kernelsFor(p.storage);
      const group = groups.get(k);
      if (group === undefined) groups.set(k, [i]);
      else group.push(i);
    });
    return groups;
  }

  /** Frees the state (GPU buffers; host arrays are collected). */
  dispose(): void {
    for (const s of [...this.state.m, ...this.state.v]) release(s);
  }
}

/** Σ g² over every parameter's gradient, accumulated on their device, as a one-element storage. */
export function gradSquaredNorm(params: Tensor[]): Storage | null {
  const first = params.find((p) => p.grad !== null);
  if (first === undefined) return null;
  const out = allocLike(first.grad!, 1);
  for (const p of params) if (p.grad !== null) kernelsFor(p.grad).sumSquaresInto(p.grad, out);
  return out;
}

/** sqrt(Σ g²) over every parameter's gradient (read back to the host). */
export async function gradNorm(params: Tensor[]): Promise<number> {
  const sq = gradSquaredNorm(params);
  return sq === null ? 0 : Math.sqrt((await hostValues(sq))[0]);
}

/** The factor torch's clip_grad_norm_ scales gradients by so that their global norm is at most maxNorm (1: none). */
export function clipScale(norm: number, maxNorm: number): number {
  const scale = maxNorm / (norm + 1e-6);
  return scale < 1 ? scale : 1;
}
