/**
 * Fused cross-entropy: logits [N, V], targets [N] (ignoreIndex rows excluded) -> mean NLL over the
 * counted rows, a scalar. Also `tokenNll` for evaluation: per-row NLLs without a graph.
 */
import { kernelsFor } from '../../native/addon.js';
import type { FloatArray } from '../../native/types.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

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
): { nll: FloatArray; lse: FloatArray; count: number } {
  const d = dimsOf(logits, targets, ignoreIndex);
  const nll = allocLike(logits.data, d.rows);
  const lse = allocLike(logits.data, d.rows);
  kernelsFor(logits.data).crossEntropyForward(logits.data, targets, nll, lse, d);
  const count = targets.reduce((c, t) => (t === ignoreIndex ? c : c + 1), 0);
  return { nll, lse, count };
}

export function crossEntropy(logits: Tensor, targets: Int32Array, ignoreIndex = IGNORE_INDEX): Tensor {
  const d = dimsOf(logits, targets, ignoreIndex);
  const { nll, lse, count } = tokenNll(logits, targets, ignoreIndex);
  if (count === 0) throw new RangeError('cross_entropy: every target is ignored, the mean is undefined');
  let total = 0;
  for (let i = 0; i < nll.length; i++) total += nll[i];
  const out = allocLike(logits.data, 1);
  out[0] = total / count;
  return record(new Tensor(out, []), 'cross_entropy', [logits], (g) => {
    const dlogits = allocLike(g, logits.size);
    kernelsFor(g).crossEntropyBackward(logits.data, targets, lse, g[0] / count, dlogits, d);
    return [dlogits];
  });
}
