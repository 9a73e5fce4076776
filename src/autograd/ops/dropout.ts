/**
 * Inverted dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) drawn from the caller's generator so a run
 * is reproducible from its seed. The mask is the generator's next x.size draws (element i kept iff draw i >= p),
 * computed by the kernel on the tensor's device from the generator's state (the DropoutDraw contract,
 * src/native/types.ts), so a GPU tensor's mask never crosses to the host. p = 0 returns x unchanged.
 */
import type { DropoutDraw } from '../../native/types.js';
import { kernelsFor } from '../../tensor/device.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import type { Rng } from '../../util/rng.js';
import { record } from '../tape.js';

/** The draw that keeps element i iff draw i / 2^32 >= p: mix > ceil(p 2^32) - 1 (p in (0, 1): in [0, 2^32 - 1]). */
function keepThreshold(p: number): number {
  return Math.ceil(p * 4294967296) - 1;
}

export function dropout(x: Tensor, p: number, rng: Rng): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const draw: DropoutDraw = { state: rng.skip(x.size), threshold: keepThreshold(p) };
  const scale = 1 / (1 - p);
  const y = allocLike(x.storage, x.size);
  kernelsFor(x.storage).dropout(x.storage, draw, scale, y);
  return record(new Tensor(y, x.shape), 'dropout', [x], (g) => {
    const dx = allocLike(g, g.length);
    kernelsFor(g).dropout(g, draw, scale, dx);
    return [dx];
  });
}
