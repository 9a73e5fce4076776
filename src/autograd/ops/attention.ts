/**
 * Causal grouped-query attention: q [B, Tq, H, D], k/v [B, Tk, Hkv, D] -> [B, Tq, H, D].
 * softmax(q k^T * scale) v with query i seeing keys j <= i + Tk - Tq. The probabilities are kept for
 * the backward only when some input requires a gradient.
 */
import { kernelsFor, kernelsOn } from '../../tensor/device.js';
import type { AttentionDims } from '../../native/types.js';
import { Tensor } from '../../tensor/tensor.js';
import { needsGrad, record } from '../tape.js';
import { allocOutput } from '../alloc.js';

export function attention(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  const [batch, tq, heads, headDim] = q.shape;
  const [kb, tk, kvHeads, kd] = k.shape;
  if (
    q.shape.length !== 4 ||
    kb !== batch ||
    kd !== headDim ||
    heads % kvHeads !== 0 ||
    tk < tq ||
    v.shape.join() !== k.shape.join()
  ) {
    throw new RangeError(`attention: q ${q}, k ${k}, v ${v} are not compatible`);
  }
  const d: AttentionDims = { batch, tq, tk, heads, kvHeads, headDim, scale };
  const kernels = kernelsOn('attention', q, k, v);
  const out = allocOutput(q.storage, q.size);
  const probs = needsGrad(q, k, v) ? allocOutput(q.storage, batch * heads * tq * tk) : null;
  kernels.attentionForward(q.storage, k.storage, v.storage, out, probs, d);
  return record(new Tensor(out, q.shape), 'attention', [q, k, v], (g) => {
    const dq = allocOutput(g, q.size);
    const dk = allocOutput(g, k.size);
    const dv = allocOutput(g, v.size);
    kernelsFor(g).attentionBackward(q.storage, k.storage, v.storage, probs!, g, dq, dk, dv, d);
    return [dq, dk, dv];
  });
}
