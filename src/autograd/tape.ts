/**
 * Reverse-mode autograd. Every op that has an input requiring a gradient attaches a Node to its output;
 * `backward(loss)` walks the graph in reverse topological order, checks every gradient an op returns
 * (count, dtype and length must match its inputs, or the error names the op), and accumulates into the
 * `grad` of leaves that require it. Intermediate gradients are freed as soon as they are consumed.
 */
import type { FloatArray } from '../native/types.js';
import { Tensor, type Node, shapeStr } from '../tensor/tensor.js';

export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return inputs.some((t) => t?.requiresGrad === true);
}

/** Attaches `node` to `out` when any input requires a gradient; returns `out`. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: Node['backward']): Tensor {
  if (needsGrad(...inputs)) {
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

function checkGrad(op: string, input: Tensor, g: FloatArray, index: number): void {
  if (g.length !== input.size || g.constructor !== input.data.constructor) {
    throw new Error(
      `autograd: op '${op}' returned a gradient for input ${index} of ${g.length} ${g.constructor.name} elements, ` +
        `expected ${input.size} ${input.data.constructor.name} (shape ${shapeStr(input.shape)})`,
    );
  }
}

/** Backpropagates from a scalar `loss` (seed 1) or from any tensor with an explicit seed gradient. */
export function backward(loss: Tensor, seed?: FloatArray): void {
  if (!loss.requiresGrad) throw new Error('autograd: backward() on a tensor that does not require a gradient');
  if (seed === undefined && loss.size !== 1)
    throw new Error(`autograd: backward() needs a seed for non-scalar ${loss}`);
  const grads = new Map<Tensor, FloatArray>();
  const s = seed ?? new (loss.data.constructor as Float32ArrayConstructor)(1).fill(1);
  checkGrad('seed', loss, s, 0);
  grads.set(loss, s);
  const order = topoOrder(loss);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    const g = grads.get(t);
    if (g === undefined) continue;
    grads.delete(t);
    if (t.node === null) {
      accumulate(t, g);
      continue;
    }
    const inputGrads = t.node.backward(g);
    if (inputGrads.length !== t.node.inputs.length) {
      throw new Error(
        `autograd: op '${t.node.op}' returned ${inputGrads.length} gradients for ${t.node.inputs.length} inputs`,
      );
    }
    t.node.inputs.forEach((input, k) => {
      const gi = inputGrads[k];
      if (!input.requiresGrad) return;
      if (gi === null)
        throw new Error(`autograd: op '${t.node!.op}' gave no gradient for input ${k}, which requires one`);
      checkGrad(t.node!.op, input, gi, k);
      const prev = grads.get(input);
      if (prev === undefined) grads.set(input, gi === g ? gi.slice() : gi);
      else for (let j = 0; j < prev.length; j++) prev[j] += gi[j];
    });
  }
}

function accumulate(leaf: Tensor, g: FloatArray): void {
  if (leaf.grad === null) leaf.grad = g.slice();
  else for (let j = 0; j < g.length; j++) leaf.grad[j] += g[j];
}

/** Clears gradients and graph links so tensors can be reused for another step. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) p.grad = null;
}

export { Tensor };
