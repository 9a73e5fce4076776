/**
 * Moving a model between the host and the GPU in place, as torch's module.to(device): every parameter tensor
 * gets storage on the target device (src/tensor/device.ts) and every linear layer moves its own weights (a packed
 * layer uploads its codes, scales and weak columns: src/models/packed-linear.ts). Tensors shared by several layers
 * (a tied lm_head) move once: moving a tensor that is already there does nothing.
 */
import type { GpuContext } from '../gpu/array.js';
import { hostValues, release, toGpu } from '../tensor/device.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LinearLayer } from './linear.js';

/** Moves a leaf tensor to the GPU of `ctx`, or back to the host (null), freeing the storage it leaves. */
export async function moveTensor(t: Tensor, ctx: GpuContext | null): Promise<void> {
  if (ctx !== null) {
    toGpu(t, ctx);
    return;
  }
  if (t.device === 'cpu') return;
  const old = t.storage;
  t.replaceStorage(await hostValues(old));
  release(old);
}

/** Moves a model's tensors and linear layers (every layer once, in order). */
export async function moveModel(
  tensors: Iterable<Tensor>,
  layers: Iterable<LinearLayer>,
  ctx: GpuContext | null,
): Promise<void> {
  for (const t of tensors) await moveTensor(t, ctx);
  for (const layer of new Set(layers)) await layer.toDevice(ctx);
}
