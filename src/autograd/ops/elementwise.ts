/** Elementwise ops with broadcasting (add, sub, mul, div), scalar affine, and activations. */
import type { BinaryOp, UnaryOp } from '../../native/types.js';
import { kernelsFor, kernelsOn } from '../../tensor/device.js';
import { Tensor, allocLike, numel, sameShape, type Storage } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { broadcastDims, broadcastShape, reduceDims } from './broadcast.js';
import { allocOutput } from '../alloc.js';

/** Sums a gradient of shape `from` down to `to` (the backward of broadcasting). */
function reduceTo(g: Storage, from: readonly number[], to: readonly number[]): Storage {
  if (sameShape(from, to)) return g;
  const out = allocLike(g, numel(to));
  kernelsFor(g).sumTo(g, out, reduceDims(to, from));
  return out;
}

function binaryRaw(
  op: BinaryOp,
  a: Storage,
  aShape: readonly number[],
  b: Storage,
  bShape: readonly number[],
  shape: number[],
): Storage {
  const out = allocOutput(a, numel(shape));
  kernelsFor(a).binary(op, a, b, out, broadcastDims(aShape, bShape, shape));
  return out;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  kernelsOn(op, a, b);
  const shape = broadcastShape(a.shape, b.shape, op);
  const out = new Tensor(binaryRaw(op, a.storage, a.shape, b.storage, b.shape, shape), shape);
  return record(out, op, [a, b], (g) => {
    const ga = a.requiresGrad ? reduceTo(gradA(op, g, a, b, shape), shape, a.shape) : null;
    const gb = b.requiresGrad ? reduceTo(gradB(op, g, a, b, shape), shape, b.shape) : null;
    return [ga, gb];
  });
}

/** d(a op b)/da * g, at the broadcast shape. */
function gradA(op: BinaryOp, g: Storage, _a: Tensor, b: Tensor, shape: number[]): Storage {
  switch (op) {
    case 'add':
    case 'sub':
      return g;
    case 'mul':
      return binaryRaw('mul', g, shape, b.storage, b.shape, shape);
    case 'div':
      return binaryRaw('div', g, shape, b.storage, b.shape, shape);
  }
}

/** d(a op b)/db * g, at the broadcast shape. */
function gradB(op: BinaryOp, g: Storage, a: Tensor, b: Tensor, shape: number[]): Storage {
  switch (op) {
    case 'add':
      return g;
    case 'sub': {
      const out = allocLike(g, g.length);
      kernelsFor(g).affine(g, out, -1, 0);
      return out;
    }
    case 'mul':
      return binaryRaw('mul', g, shape, a.storage, a.shape, shape);
    case 'div': {
      // d(a/b)/db = -a / b^2
      const bb = binaryRaw('mul', b.storage, b.shape, b.storage, b.shape, [...b.shape]);
      const ab = binaryRaw('div', a.storage, a.shape, bb, b.shape, shape);
      const gab = binaryRaw('mul', g, shape, ab, shape, shape);
      const out = allocLike(gab, gab.length);
      kernelsFor(gab).affine(gab, out, -1, 0);
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
  const out = allocLike(x.storage, x.size);
  kernelsFor(x.storage).affine(x.storage, out, alpha, beta);
  return record(new Tensor(out, x.shape), 'affine', [x], (g) => {
    const gx = allocLike(g, g.length);
    kernelsFor(g).affine(g, gx, alpha, 0);
    return [gx];
  });
}

function unary(op: UnaryOp, x: Tensor): Tensor {
  const out = allocOutput(x.storage, x.size);
  kernelsFor(x.storage).unaryForward(op, x.storage, out);
  return record(new Tensor(out, x.shape), op, [x], (g) => {
    const gx = allocOutput(g, g.length);
    kernelsFor(g).unaryBackward(op, x.storage, g, gx);
    return [gx];
  });
}

export const relu = (x: Tensor): Tensor => unary('relu', x);
/** GELU with the exact erf form (torch's default, HF "gelu"). */
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
