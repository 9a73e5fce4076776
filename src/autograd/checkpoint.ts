/**
 * Gradient checkpointing of one step of a forward (a decoder block): y = f(x) is computed with nothing recorded, so
 * none of f's intermediate activations outlive the forward; only x is held, by the node. The backward computes f
 * again from x, recorded this time, and backpropagates dL/dy through that copy at once: x gets its gradient back
 * from the nested walk, and every leaf inside f (the trained weights) gets its gradient as the outer walk's leaves
 * do (accumulated into `.grad`, or the outer sink). The peak holds every block's input and one block's activations
 * instead of every block's activations, for one more forward of each block per step.
 *
 * f must compute the same values both times: it may not draw random numbers (dropout advances its generator, so
 * the recipe refuses LoRA dropout with checkpointing) nor depend on state it changes. On the GPU the recomputed
 * activations live until the step's scope ends, as the recorded ones do, so the saving is the host's.
 */
import { Tensor, type Storage } from '../tensor/tensor.js';
import { backward, copyOf, isRecording, outerLeafTarget, withoutRecording } from './tape.js';

export function checkpoint(f: (x: Tensor) => Tensor, x: Tensor): Tensor {
  if (!isRecording()) return f(x);
  const y = withoutRecording(() => f(x));
  y.requiresGrad = true;
  y.node = {
    op: 'checkpoint',
    inputs: [x],
    backward: (g) => {
      const leaf = new Tensor(x.storage, x.shape, x.requiresGrad); // x again, a leaf whose gradient comes back here
      const again = f(leaf);
      if (!again.requiresGrad) return [null]; // nothing in f trains and x needs no gradient
      let dx: Storage | null = null;
      const outer = outerLeafTarget();
      backward(again, g, (t, gt) => {
        if (t !== leaf) outer(t, gt);
        else dx = copyOf(gt); // a sink's gradient is not its own to keep
      });
      return [dx];
    },
  };
  return y;
}
