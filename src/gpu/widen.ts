/**
 * An f32 copy of half storage on the device (src/gpu/half.ts): one invocation per element, out[i] = X_at(i), exact
 * (every f16 and bf16 value is an f32). Frozen f16 weak columns that become trainable are widened so
 * (src/gpu/packed-weight.ts thawWeak): the optimizer then updates f32 master values.
 */
import type { GpuArray } from './array.js';
import { readPath, variants } from './half.js';
import { pointwise, runPointwise } from './pointwise.js';

const kernel = variants((x) =>
  pointwise({
    label: 'widen',
    bindings: [
      { name: 'X', access: 'read', read: x, flat: true },
      { name: 'O', access: 'read_write', flat: true },
    ],
    body: 'O[i] = X_at(i);',
  }),
);

/** A new f32 array (tracked by the innermost scope) holding the values of `x`. */
export function widen(x: GpuArray): GpuArray {
  const out = x.ctx.zeros(x.length, 'f32 widened');
  runPointwise(x.ctx, kernel(readPath(x.ctx.device, x.format)), [x, out], x.length);
  return out;
}
