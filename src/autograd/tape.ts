/**
 * Reverse-mode autograd. Every op that has an input requiring a gradient attaches a Node to its output;
 * `backward(loss)` walks the graph in reverse topological order, checks every gradient an op returns
 * (count, dtype and length must match its inputs, or the error names the op), and accumulates into the
 * `grad` of leaves that require it. Intermediate gradients are freed as soon as they are consumed.
 *
 * Every gradient the walk holds is its own (an op's fresh output, or a copy) except a caller's seed, so one that an
 * op passes through unchanged (reshape, add) is moved to its input, and a leaf's first gradient becomes its `.grad`;
 * only a second holder of the same storage (add(x, y) passing g to both) or the caller's seed gets a copy.
 */
import { GpuArray } from '../gpu/array.js';
import { keep, kernelsFor, onDeviceOf, release } from '../tensor/device.js';
import { Tensor, allocLike, type Node, type Storage, shapeStr } from '../tensor/tensor.js';
import { allocOutput } from './alloc.js';

export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return inputs.some((t) => t?.requiresGrad === true);
}

/** Whether ops attach nodes (off inside withoutRecording: a checkpointed forward, ./checkpoint.ts). */
let recording = true;

export function isRecording(): boolean {
  return recording;
}

/** Runs `fn` with no node attached to anything it computes (its results require no gradient). */
export function withoutRecording<T>(fn: () => T): T {
  const was = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = was;
  }
}

/** Attaches `node` to `out` when any input requires a gradient (and ops record); returns `out`. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: Node['backward']): Tensor {
  if (recording && needsGrad(...inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const input of t.node?.inputs ?? []) if (input.requiresGrad && !seen.has(input)) stack.push([input, false]);
  }
  return order;
}

function checkGrad(op: string, input: Tensor, g: Storage, index: number): void {
  if (g.length !== input.size || g.constructor !== input.storage.constructor) {
    throw new Error(
      `autograd: op '${op}' returned a gradient for input ${index} of ${g.length} ${g.constructor.name} elements, ` +
        `expected ${input.size} ${input.storage.constructor.name} (shape ${shapeStr(input.shape)})`,
    );
  }
}

/** A copy of g on its device. */
export function copyOf(g: Storage): Storage {
  const out = allocOutput(g, g.length);
  kernelsFor(g).copy(g, 0, out, 0, g.length);
  return out;
}

/** The seed as storage on the loss's device (a host seed is uploaded for a GPU loss). */
function seedOf(loss: Tensor, seed: Storage | undefined): Storage {
  if (seed === undefined) {
    const one = allocLike(loss.storage, 1);
    kernelsFor(one).fill(one, 1);
    return one;
  }
  return loss.storage instanceof GpuArray && !(seed instanceof GpuArray) ? onDeviceOf(loss.storage, seed) : seed;
}

/**
 * Receives a leaf's whole gradient of one backward in place of its accumulation into `leaf.grad`; the gradient is
 * not kept after the call (so a caller can reduce each weight's gradient at once, one at a time).
 */
export type LeafSink = (leaf: Tensor, grad: Storage) => void;

/** Where the backward in progress sends leaf gradients (its sink, or accumulation into `.grad`); null outside one. */
let leafTarget: LeafSink | null = null;

/**
 * The leaf handling of the backward in progress, for a backward nested inside one of its ops (a checkpointed
 * block's, ./checkpoint.ts): its leaves then get their gradients as the outer walk's leaves do.
 */
export function outerLeafTarget(): LeafSink {
  if (leafTarget === null) throw new Error('autograd: outerLeafTarget() outside a backward');
  return leafTarget;
}

/**
 * Backpropagates from a scalar `loss` (seed 1) or from any tensor with an explicit seed gradient, on the loss's
 * device: every gradient stays where its tensor is (the ops refuse mixed devices). Leaves accumulate into `.grad`,
 * or go to `sink` when one is given.
 */
export function backward(loss: Tensor, seed?: Storage, sink?: LeafSink): void {
  if (!loss.requiresGrad) throw new Error('autograd: backward() on a tensor that does not require a gradient');
  if (seed === undefined && loss.size !== 1)
    throw new Error(`autograd: backward() needs a seed for non-scalar ${loss}`);
  const grads = new Map<Tensor, Storage>();
  const s = seedOf(loss, seed);
  checkGrad('seed', loss, s, 0);
  grads.set(loss, s);
  const borrowed = seed === undefined ? null : s;
  const order = topoOrder(loss);
  const outer = leafTarget;
  leafTarget = sink ?? ((leaf, g) => accumulate(leaf, g, false));
  try {
    walk(order, grads, borrowed, sink);
  } finally {
    leafTarget = outer;
  }
}

/** The reverse walk of backward() over `order`, from the gradients in `grads`. */
function walk(order: Tensor[], grads: Map<Tensor, Storage>, borrowed: Storage | null, sink?: LeafSink): void {
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    const g = grads.get(t);
    if (g === undefined) continue;
    grads.delete(t);
    if (t.node === null) {
      if (sink === undefined) accumulate(t, g, g !== borrowed);
      else sink(t, g);
      continue;
    }
    const inputs = t.node.inputs;
    const inputGrads = t.node.backward(g, (k) => (inputs[k].requiresGrad ? (grads.get(inputs[k]) ?? null) : null));
    if (inputGrads.length !== t.node.inputs.length) {
      throw new Error(
        `autograd: op '${t.node.op}' returned ${inputGrads.length} gradients for ${t.node.inputs.length} inputs`,
      );
    }
    let gMovable = g !== borrowed; // g passed through is moved to the first input that takes it, copied after
    t.node.inputs.forEach((input, k) => {
      const gi = inputGrads[k];
      if (!input.requiresGrad) return;
      if (gi === null)
        throw new Error(`autograd: op '${t.node!.op}' gave no gradient for input ${k}, which requires one`);
      checkGrad(t.node!.op, input, gi, k);
      const prev = grads.get(input);
      if (prev === gi) return; // the op added its gradient into the one held (Node.backward's `held`)
      if (prev !== undefined) kernelsFor(prev).accumulate(prev, gi);
      else if (gi !== g) grads.set(input, gi);
      else {
        grads.set(input, gMovable ? g : copyOf(g));
        gMovable = false;
      }
    });
  }
}

/**
 * A leaf's gradient outlives the step's scope (src/tensor/device.ts `scoped`): the optimizer reads it after. The
 * first one is `g` itself when the walk owns it, else a copy.
 */
function accumulate(leaf: Tensor, g: Storage, owned: boolean): void {
  if (leaf.grad === null) leaf.grad = keep(owned ? g : copyOf(g));
  else kernelsFor(leaf.grad).accumulate(leaf.grad, g);
}

/** Clears (and frees) gradients so tensors can be reused for another step. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    release(p.grad);
    p.grad = null;
  }
}

export { Tensor };
