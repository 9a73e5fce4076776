/**
 * One AdamW step in WGSL (the AdamWStepParams contract of src/native/types.ts; oracle src/native/ref.ts,
 * torch.optim.AdamW): one invocation per parameter, θ, m and v updated in place from the gradient g read as
 * g * gradScale (global-norm clipping folded in; the reference rounds that product to f32 when gradScale != 1,
 * which an f32 multiply does by itself).
 *
 * The scalars that lose precision in f32 are formed on the host in double and rounded once: 1 - β1, 1 - β2
 * (1 - 0.999 computed in f32 from the rounded β2 is 1.3e-5 relative off) and lr·λ.
 */
import { type AdamWStepParams, eachAdamwTensor, type Kernels } from '../native/types.js';
import type { GpuArray } from './array.js';
import { f32, need } from './dispatch.js';
import { pointwise, runPointwise } from './pointwise.js';

const adamwKernel = pointwise({
  label: 'adamw',
  bindings: [
    { name: 'TH', access: 'read_write', flat: true },
    { name: 'G', access: 'read', flat: true },
    { name: 'M', access: 'read_write', flat: true },
    { name: 'V', access: 'read_write', flat: true },
  ],
  params:
    'lr: f32, lrWd: f32, beta1: f32, omb1: f32, beta2: f32, omb2: f32, eps: f32, c1: f32, c2: f32, gradScale: f32,',
  body: /* wgsl */ `
  let g = G[i] * P.gradScale;
  let th = TH[i] - P.lrWd * TH[i];
  let m = P.beta1 * M[i] + P.omb1 * g;
  let v = P.beta2 * V[i] + P.omb2 * g * g;
  M[i] = m;
  V[i] = v;
  TH[i] = th - (P.lr * (m / P.c1)) / (sqrt(v / P.c2) + P.eps);`,
});

/** θ -= lr λ θ; m = β1 m + (1 - β1) g; v = β2 v + (1 - β2) g²; θ -= lr (m / c1) / (sqrt(v / c2) + ε), in place. */
export function adamw(theta: GpuArray, g: GpuArray, m: GpuArray, v: GpuArray, p: AdamWStepParams): void {
  need('adamw', 'g', g, theta.length);
  need('adamw', 'm', m, theta.length);
  need('adamw', 'v', v, theta.length);
  runPointwise(
    theta.ctx,
    adamwKernel,
    [theta, g, m, v],
    theta.length,
    f32(p.lr),
    f32(p.lr * p.weightDecay),
    f32(p.beta1),
    f32(1 - p.beta1),
    f32(p.beta2),
    f32(1 - p.beta2),
    f32(p.eps),
    f32(p.c1),
    f32(p.c2),
    f32(p.gradScale),
  );
}

/** adamw on each parameter in turn (one dispatch each, all on one queue). */
export function adamwMany(
  thetas: GpuArray[],
  gs: GpuArray[],
  ms: GpuArray[],
  vs: GpuArray[],
  p: AdamWStepParams,
): void {
  eachAdamwTensor('adamwMany', thetas, gs, ms, vs, (theta, g, m, v) => adamw(theta, g, m, v, p));
}

export const adamwKernels = { adamw, adamwMany } satisfies Partial<Kernels<GpuArray>>;
