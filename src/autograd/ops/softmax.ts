/** Softmax over the last dim. */
import { kernelsFor } from '../../tensor/device.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

export function softmax(x: Tensor): Tensor {
  const cols = x.shape[x.shape.length - 1];
  const d = { rows: x.size / cols, cols };
  const y = allocLike(x.storage, x.size);
  kernelsFor(x.storage).softmaxForward(x.storage, y, d);
  return record(new Tensor(y, x.shape), 'softmax', [x], (g) => {
    const dx = allocLike(g, x.size);
    kernelsFor(g).softmaxBackward(y, g, dx, d);
    return [dx];
  });
}
