/** NumPy broadcasting: output shape and, per output dim, each input's element stride (0 where broadcast). */
import { denseStrides } from '../../gpu/layout.js';
import type { BroadcastDims } from '../../native/types.js';

export { denseStrides };
import { shapeStr } from '../../tensor/tensor.js';

/** Strides of `shape` read as if broadcast to `out` (right-aligned, size-1 dims get stride 0). */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const dense = denseStrides(shape);
  const offset = out.length - shape.length;
  return out.map((_, i) => {
    const j = i - offset;
    return j < 0 || shape[j] === 1 ? 0 : dense[j];
  });
}

export function broadcastShape(a: readonly number[], b: readonly number[], op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${op}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

export function broadcastDims(a: readonly number[], b: readonly number[], out: readonly number[]): BroadcastDims {
  return { shape: [...out], stridesA: broadcastStrides(a, out), stridesB: broadcastStrides(b, out) };
}

/** Layout for reducing a gradient of shape `out` back onto an input of shape `input` (sumTo kernel). */
export function reduceDims(input: readonly number[], out: readonly number[]): BroadcastDims {
  const strides = broadcastStrides(input, out);
  return { shape: [...out], stridesA: strides, stridesB: strides };
}
