/**
 * Inverted dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) from the caller's RNG so a run
 * is reproducible from its seed. p = 0 (or eval) returns x unchanged.
 */
import { kernelsFor } from '../../tensor/device.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

export function dropout(x: Tensor, p: number, random: () => number): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const mask = new Uint8Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = random() >= p ? 1 : 0;
  const scale = 1 / (1 - p);
  const y = allocLike(x.storage, x.size);
  kernelsFor(x.storage).dropout(x.storage, mask, scale, y);
  return record(new Tensor(y, x.shape), 'dropout', [x], (g) => {
    const dx = allocLike(g, g.length);
    kernelsFor(g).dropout(g, mask, scale, dx);
    return [dx];
  });
}
