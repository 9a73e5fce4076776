/**
 * Rotary position embedding, HF rotate-half layout: for head vector x = [x1, x2] (halves of D),
 * y = [x1 cos - x2 sin, x2 cos + x1 sin] with angle pos * invFreq[i]. x: [B, T, H, D].
 */
import { GpuArray } from '../../gpu/array.js';
import type { FloatArray } from '../../native/types.js';
import { kernelsFor, onDeviceOf } from '../../tensor/device.js';
import { Tensor, allocLike, type Storage } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { PLAIN_ROPE, ropeInvFreq, type RopeScaling } from './rope-frequencies.js';

export interface RopeTable {
  /** [T, D/2] each */
  cos: FloatArray;
  sin: FloatArray;
  positions: number;
}

/**
 * cos/sin for positions start..start+T-1, computed as HF does in fp32: invFreq from ./rope-frequencies.ts (plain,
 * or under `scaling`, for a forward reaching start + T positions), angle = fp32(pos * invFreq), then cos/sin of
 * the fp32 angle rounded to fp32 (for an f64 table the same values are computed in double).
 */
export function ropeTable(
  start: number,
  count: number,
  headDim: number,
  theta: number,
  dtype: 'f32' | 'f64',
  scaling: RopeScaling = PLAIN_ROPE,
): RopeTable {
  const half = headDim / 2;
  const r = dtype === 'f32' ? Math.fround : (v: number) => v;
  const n = count * half;
  const cos = dtype === 'f32' ? new Float32Array(n) : new Float64Array(n);
  const sin = dtype === 'f32' ? new Float32Array(n) : new Float64Array(n);
  const invFreq = ropeInvFreq(headDim, theta, scaling, start + count, dtype);
  for (let i = 0; i < half; i++) {
    for (let t = 0; t < count; t++) {
      const angle = r((start + t) * invFreq[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin, positions: count };
}

/** The table's cos/sin on the device of `like`, uploaded once per table (every layer of a forward shares one). */
const onDevice = new WeakMap<RopeTable, { cos: Storage; sin: Storage }>();
function tableOn(like: Storage, table: RopeTable): { cos: Storage; sin: Storage } {
  let t = onDevice.get(table);
  // A GPU copy made in a scope that has ended was freed with it (blocks run one scope each when quantizing).
  const freed = t !== undefined && t.cos instanceof GpuArray && t.cos.released;
  if (t === undefined || t.cos.constructor !== like.constructor || freed) {
    t = { cos: onDeviceOf(like, table.cos), sin: onDeviceOf(like, table.sin) };
    onDevice.set(table, t);
  }
  return t;
}

export function rope(x: Tensor, table: RopeTable): Tensor {
  const [batch, seq, heads, headDim] = x.shape;
  if (x.shape.length !== 4 || table.positions !== seq || table.cos.length !== (seq * headDim) / 2) {
    throw new RangeError(`rope: input ${x} does not match a table of ${table.positions} positions`);
  }
  const d = { batch, seq, heads, headDim };
  const { cos, sin } = tableOn(x.storage, table);
  const y = allocLike(x.storage, x.size);
  kernelsFor(x.storage).rope(x.storage, y, cos, sin, d, false);
  return record(new Tensor(y, x.shape), 'rope', [x], (g) => {
    const dx = allocLike(g, x.size);
    kernelsFor(g).rope(g, dx, cos, sin, d, true);
    return [dx];
  });
}
