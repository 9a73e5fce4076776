/**
 * Tensor: a shape over a dense row-major Float32Array (the engine's dtype) or Float64Array (the
 * reference dtype of gradient checks). Autograd bookkeeping (`grad`, `node`) lives here too so the tape
 * stays a plain function over tensors; see src/autograd/tape.ts.
 */
import type { FloatArray } from '../native/types.js';

export type DType = 'f32' | 'f64';

/** What the tape needs to know about how a tensor was made. */
export interface Node {
  op: string;
  inputs: Tensor[];
  /** Given dL/d(output), returns dL/d(input) for each input (null where the input needs no gradient). */
  backward(gradOut: FloatArray): (FloatArray | null)[];
}

export class Tensor {
  readonly shape: readonly number[];
  readonly data: FloatArray;
  /** True for leaves we train and for every tensor computed from one. */
  requiresGrad: boolean;
  grad: FloatArray | null = null;
  node: Node | null = null;

  constructor(data: FloatArray, shape: readonly number[], requiresGrad = false) {
    const n = numel(shape);
    if (data.length !== n) {
      throw new RangeError(`Tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.requiresGrad = requiresGrad;
  }

  get dtype(): DType {
    return this.data instanceof Float64Array ? 'f64' : 'f32';
  }

  get size(): number {
    return this.data.length;
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`;
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function allocLike(data: FloatArray, n: number): FloatArray {
  return data instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const n = numel(shape);
  return new Tensor(dtype === 'f64' ? new Float64Array(n) : new Float32Array(n), shape);
}

export function fromArray(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const data = dtype === 'f64' ? Float64Array.from(values) : Float32Array.from(values);
  return new Tensor(data, shape);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
