/** Elementwise ops with broadcasting (add, sub, mul, div), scalar affine, and activations. */
import { kernelsFor } from '../../native/addon.js';
import type { BinaryOp, FloatArray, UnaryOp } from '../../native/types.js';
import { Tensor, allocLike, numel, sameShape } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { broadcastDims, broadcastShape, reduceDims } from './broadcast.js';

function checkDtypes(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new TypeError(`${op}: dtype mismatch (${a} vs ${b})`);
}

/** Sums a gradient of shape `from` down to `to` (the backward of broadcasting). */
function reduceTo(g: FloatArray, from: readonly number[], to: readonly number[]): FloatArray {
  if (sameShape(from, to)) return g;
  const out = allocLike(g, numel(to));
  kernelsFor(g).sumTo(g, out, reduceDims(to, from));
  return out;
}

function binaryRaw(
  op: BinaryOp,
  a: FloatArray,
  aShape: readonly number[],
  b: FloatArray,
  bShape: readonly number[],
  shape: number[],
): FloatArray {
  const out = allocLike(a, numel(shape));
  kernelsFor(a).binary(op, a, b, out, broadcastDims(aShape, bShape, shape));
  return out;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  checkDtypes(op, a, b);
  const shape = broadcastShape(a.shape, b.shape, op);
  const out = new Tensor(binaryRaw(op, a.data, a.shape, b.data, b.shape, shape), shape);
  return record(out, op, [a, b], (g) => {
    const ga = a.requiresGrad ? reduceTo(gradA(op, g, a, b, shape), shape, a.shape) : null;
    const gb = b.requiresGrad ? reduceTo(gradB(op, g, a, b, shape), shape, b.shape) : null;
    return [ga, gb];
  });
}

/** d(a op b)/da * g, at the broadcast shape. */
function gradA(op: BinaryOp, g: FloatArray, _a: Tensor, b: Tensor, shape: number[]): FloatArray {
  switch (op) {
    case 'add':
    case 'sub':
      return g;
    case 'mul':
      return binaryRaw('mul', g, shape, b.data, b.shape, shape);
    case 'div':
      return binaryRaw('div', g, shape, b.data, b.shape, shape);
  }
}

/** d(a op b)/db * g, at the broadcast shape. */
function gradB(op: BinaryOp, g: FloatArray, a: Tensor, b: Tensor, shape: number[]): FloatArray {
  switch (op) {
    case 'add':
      return g;
    case 'sub': {
      const out = allocLike(g, g.length);
      kernelsFor(g).affine(g, out, -1, 0);
      return out;
    }
    case 'mul':
      return binaryRaw('mul', g, shape, a.data, a.shape, shape);
    case 'div': {
      // d(a/b)/db = -a / b^2
      const bb = binaryRaw('mul', b.data, b.shape, b.data, b.shape, [...b.shape]);
      const ab = binaryRaw('div', a.data, a.shape, bb, b.shape, shape);
      const out = binaryRaw('mul', g, shape, ab, shape, shape);
      kernelsFor(out).affine(out, out, -1, 0);
      return out;
    }
  }
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);

/** y = alpha * x + beta. */
export function affine(x: Tensor, alpha: number, beta = 0): Tensor {
  const out = allocLike(x.data, x.size);
  kernelsFor(x.data).affine(x.data, out, alpha, beta);
  return record(new Tensor(out, x.shape), 'affine', [x], (g) => {
    const gx = allocLike(g, g.length);
    kernelsFor(g).affine(g, gx, alpha, 0);
    return [gx];
  });
}

function unary(op: UnaryOp, x: Tensor): Tensor {
  const out = allocLike(x.data, x.size);
  kernelsFor(x.data).unaryForward(op, x.data, out);
  return record(new Tensor(out, x.shape), op, [x], (g) => {
    const gx = allocLike(g, g.length);
    kernelsFor(g).unaryBackward(op, x.data, g, gx);
    return [gx];
  });
}

export const relu = (x: Tensor): Tensor => unary('relu', x);
/** GELU with the exact erf form (torch's default, HF "gelu"). */
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
