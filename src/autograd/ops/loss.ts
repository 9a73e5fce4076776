/**
 * Fused cross-entropy: logits [N, V], targets [N] (ignoreIndex rows excluded) -> mean NLL over the
 * counted rows, a scalar on the logits' device. Also `tokenNll` for evaluation: per-row NLLs without a graph.
 */
import { GpuArray } from '../../gpu/array.js';
import { kernelsFor } from '../../tensor/device.js';
import { Tensor, allocLike, type Storage } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { allocOutput } from '../alloc.js';

export const IGNORE_INDEX = -100;

function dimsOf(logits: Tensor, targets: Int32Array, ignoreIndex: number) {
  const vocab = logits.shape[logits.shape.length - 1];
  const rows = logits.size / vocab;
  if (targets.length !== rows)
    throw new RangeError(`cross_entropy: ${targets.length} targets for ${rows} rows of ${logits}`);
  return { rows, vocab, ignoreIndex };
}

/** Per-row NLL (0 on ignored rows) and the number of counted rows. */
export function tokenNll(
  logits: Tensor,
  targets: Int32Array,
  ignoreIndex = IGNORE_INDEX,
): { nll: Storage; lse: Storage; count: number } {
  const d = dimsOf(logits, targets, ignoreIndex);
  const nll = allocLike(logits.storage, d.rows);
  const lse = allocLike(logits.storage, d.rows);
  kernelsFor(logits.storage).crossEntropyForward(logits.storage, targets, nll, lse, d);
  const count = targets.reduce((c, t) => (t === ignoreIndex ? c : c + 1), 0);
  return { nll, lse, count };
}

export function crossEntropy(logits: Tensor, targets: Int32Array, ignoreIndex = IGNORE_INDEX): Tensor {
  const d = dimsOf(logits, targets, ignoreIndex);
  const { nll, lse, count } = tokenNll(logits, targets, ignoreIndex);
  if (count === 0) throw new RangeError('cross_entropy: every target is ignored, the mean is undefined');
  const kernels = kernelsFor(nll);
  const out = allocLike(nll, 1);
  kernels.sumInto(nll, out, 1 / count);
  return record(new Tensor(out, []), 'cross_entropy', [logits], (g) => {
    const dlogits = allocOutput(g, logits.size);
    // d(mean NLL)/dlogits = (softmax - onehot) / count, times the upstream scalar g: a host g folds into the
    // kernel's row scale (one pass over the [N, V] logits), a GPU one is applied where it is.
    if (g instanceof GpuArray) {
      kernels.crossEntropyBackward(logits.storage, targets, lse, 1 / count, dlogits, d);
      kernels.scaleBy(dlogits, g, 1);
    } else kernels.crossEntropyBackward(logits.storage, targets, lse, g[0] / count, dlogits, d);
    return [dlogits];
  });
}
