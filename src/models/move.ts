/**
 * Moving a model between the host and the GPU in place, as torch's module.to(device): every parameter tensor
 * gets storage on the target device (src/tensor/device.ts) and every linear layer moves its own weights (a packed
 * layer uploads its codes, scales and weak columns: src/models/packed-linear.ts). Tensors shared by several layers
 * (a tied lm_head) move once: moving a tensor that is already there does nothing. The layers move first, so that
 * a dense layer's frozen weight read from an F16/BF16 checkpoint goes to the device in that format
 * (moveFrozenWeight: half storage, read by the gemm and the embedding lookup only) before the other tensors follow
 * in f32.
 */
import { type GpuContext, keep } from '../gpu/array.js';
import { exactHalf } from '../gpu/half.js';
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

/**
 * moveTensor for a weight only the gemm (as the weight operand) and the embedding lookup read: to the GPU in its
 * checkpoint's 16-bit format (t.halfSource) when it is frozen and its values are still exact in that format
 * (half the memory, the same values), else as moveTensor does.
 */
export async function moveFrozenWeight(t: Tensor, ctx: GpuContext | null): Promise<void> {
  const host = t.storage;
  if (ctx !== null && !t.requiresGrad && t.halfSource !== null && host instanceof Float32Array) {
    const bits = exactHalf(host, t.halfSource);
    if (bits !== null) {
      t.replaceStorage(keep(ctx.uploadHalf(bits, t.halfSource, `weight ${t.halfSource}`)));
      return;
    }
  }
  await moveTensor(t, ctx);
}

/** Moves a model's linear layers (every layer once, in order), then its other tensors. */
export async function moveModel(
  tensors: Iterable<Tensor>,
  layers: Iterable<LinearLayer>,
  ctx: GpuContext | null,
): Promise<void> {
  for (const layer of new Set(layers)) await layer.toDevice(ctx);
  for (const t of tensors) await moveTensor(t, ctx);
}
