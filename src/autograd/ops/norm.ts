/** RMSNorm (Llama) and LayerNorm (OPT) over the last dim C of x [..., C]. */
import { kernelsFor, kernelsOn } from '../../tensor/device.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { allocOutput } from '../alloc.js';

function rowsOf(x: Tensor, w: Tensor, op: string): { rows: number; cols: number } {
  const cols = x.shape[x.shape.length - 1];
  if (w.shape.length !== 1 || w.shape[0] !== cols) throw new RangeError(`${op}: weight ${w} does not match input ${x}`);
  return { rows: x.size / cols, cols };
}

/** y = x / sqrt(mean(x^2) + eps) * w */
export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const d = { ...rowsOf(x, w, 'rmsnorm'), eps };
  const k = kernelsOn('rmsnorm', x, w);
  const y = allocOutput(x.storage, x.size);
  const rstd = allocLike(x.storage, d.rows);
  k.rmsnormForward(x.storage, w.storage, y, rstd, d);
  return record(new Tensor(y, x.shape), 'rmsnorm', [x, w], (g) => {
    const dx = allocOutput(g, x.size);
    const dw = allocLike(g, w.size);
    kernelsFor(g).rmsnormBackward(x.storage, w.storage, rstd, g, dx, dw, d);
    return [dx, dw];
  });
}

/** y = (x - mean) / sqrt(var + eps) * w + b, biased variance as torch. */
export function layernorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  const d = { ...rowsOf(x, w, 'layernorm'), eps };
  const k = kernelsOn('layernorm', x, w, b);
  const y = allocOutput(x.storage, x.size);
  const mean = allocLike(x.storage, d.rows);
  const rstd = allocLike(x.storage, d.rows);
  k.layernormForward(x.storage, w.storage, b.storage, y, mean, rstd, d);
  return record(new Tensor(y, x.shape), 'layernorm', [x, w, b], (g) => {
    const dx = allocOutput(g, x.size);
    const dw = allocLike(g, w.size);
    const db = allocLike(g, b.size);
    kernelsFor(g).layernormBackward(x.storage, w.storage, mean, rstd, g, dx, dw, db, d);
    return [dx, dw, db];
  });
}
