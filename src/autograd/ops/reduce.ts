/** Full reductions to a scalar (shape []): sum and mean. */
import { kernelsFor } from '../../native/addon.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

function scalar(x: Tensor, value: number): Tensor {
  const out = allocLike(x.data, 1);
  out[0] = value;
  return new Tensor(out, []);
}

function total(x: Tensor, scale: number, op: string): Tensor {
  const out = scalar(x, kernelsFor(x.data).sumAll(x.data) * scale);
  return record(out, op, [x], (g) => [allocLike(g, x.size).fill(g[0] * scale)]);
}

export const sum = (x: Tensor): Tensor => total(x, 1, 'sum');
export const mean = (x: Tensor): Tensor => total(x, 1 / x.size, 'mean');
