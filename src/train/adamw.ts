/**
 * AdamW (Loshchilov & Hutter; torch.optim.AdamW's update): for each parameter θ with gradient g at step t
 *   θ ← θ - lr·λ·θ                      (decoupled weight decay)
 *   m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²
 *   θ ← θ - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
 * State m, v in fp32 beside each parameter (the "fp32 master copies" are the parameters themselves).
 */
import type { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export interface AdamWState {
  /** Optimizer steps taken (t). */
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  state: AdamWState;

  constructor(
    readonly params: Tensor[],
    readonly options: AdamWOptions,
  ) {
    this.state = {
      step: 0,
      m: params.map((p) => new Float32Array(p.size)),
      v: params.map((p) => new Float32Array(p.size)),
    };
  }

  /** Bytes of optimizer state (m and v). */
  stateBytes(): number {
    return this.state.m.reduce((n, m) => n + m.byteLength * 2, 0);
  }

  /** One update with learning rate `lr` from each parameter's accumulated .grad. */
  step(lr: number): void {
    const {
      betas: [b1, b2],
      eps,
      weightDecay,
    } = this.options;
    const t = ++this.state.step;
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (g === null) return;
      const theta = p.data;
      const m = this.state.m[i];
      const v = this.state.v[i];
      for (let j = 0; j < theta.length; j++) {
        theta[j] -= lr * weightDecay * theta[j];
        m[j] = b1 * m[j] + (1 - b1) * g[j];
        v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
        theta[j] -= (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + eps);
      }
    });
  }
}

/** sqrt(Σ g²) over every parameter's gradient (double accumulation). */
export function gradNorm(params: Tensor[]): number {
  let s = 0;
  for (const p of params) if (p.grad !== null) for (const x of p.grad) s += x * x;
  return Math.sqrt(s);
}

/** Scales all gradients so their global norm is at most maxNorm (torch clip_grad_norm_); returns the norm before. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1)
    for (const p of params) if (p.grad !== null) for (let j = 0; j < p.grad.length; j++) p.grad[j] *= scale;
  return norm;
}
