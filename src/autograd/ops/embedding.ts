/** Embedding lookup: table [V, C], ids [N] -> [N, C] (reshape the result to [B, T, C]); scatter-add backward. */
import { kernelsFor } from '../../tensor/device.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { allocOutput } from '../alloc.js';

export function embedding(table: Tensor, ids: Int32Array, shape: readonly number[] = [ids.length]): Tensor {
  const [vocab, dim] = table.shape;
  const d = { rows: ids.length, dim, vocab };
  const out = allocOutput(table.storage, ids.length * dim);
  kernelsFor(table.storage).embeddingForward(table.storage, ids, out, d);
  // The backward scatter-adds into the table's gradient the tape already holds (a tied lm_head's dW) when there is
  // one, instead of a zeroed [V, C] array added to it after.
  return record(new Tensor(out, [...shape, dim]), 'embedding', [table], (g, held) => {
    const dTable = held(0) ?? allocLike(g, table.size);
    kernelsFor(g).embeddingBackward(g, ids, dTable, d);
    return [dTable];
  });
}
