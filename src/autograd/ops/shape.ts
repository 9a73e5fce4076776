/** Shape ops: reshape (a view: same data, new shape; the gradient is reshaped back). */
import { Tensor, numel, shapeStr } from '../../tensor/tensor.js';
import { record } from '../tape.js';

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const resolved = resolveShape(x, shape);
  return record(new Tensor(x.storage, resolved), 'reshape', [x], (g) => [g]);
}

/** Fills one -1 entry from the element count. */
function resolveShape(x: Tensor, shape: readonly number[]): number[] {
  const known = shape.filter((d) => d !== -1);
  const free = shape.length - known.length;
  if (free > 1) throw new RangeError(`reshape: more than one -1 in ${shapeStr(shape)}`);
  const out = free === 1 ? shape.map((d) => (d === -1 ? x.size / numel(known) : d)) : [...shape];
  if (numel(out) !== x.size) throw new RangeError(`reshape: cannot view ${x} as ${shapeStr(shape)}`);
  return out;
}
