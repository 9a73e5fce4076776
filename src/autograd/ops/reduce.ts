/** Full reductions to a scalar (shape []): sum and mean, computed on the input's device. */
import { kernelsFor } from '../../tensor/device.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

function total(x: Tensor, scale: number, op: string): Tensor {
  const out = allocLike(x.storage, 1);
  kernelsFor(x.storage).sumInto(x.storage, out, scale);
  return record(new Tensor(out, []), op, [x], (g) => {
    const dx = allocLike(g, x.size);
    kernelsFor(g).broadcastScalar(g, dx, scale);
    return [dx];
  });
}

export const sum = (x: Tensor): Tensor => total(x, 1, 'sum');
export const mean = (x: Tensor): Tensor => total(x, 1 / x.size, 'mean');
