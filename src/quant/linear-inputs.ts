/**
 * The calibration activations a block pipeline holds (one block's at a time), and a record of what every linear of
 * a block is fed: one forward of the block per calibration batch with each linear wrapped, keeping each input
 * tensor (linears fed the same tensor, q/k/v or gate/up, share it). AWQ searches and clips on these records.
 */
import type { LinearLayer } from '../models/linear.js';
import type { BlockContext, CausalLM } from '../models/model.js';
import { keep, scoped } from '../tensor/device.js';
import type { Tensor } from '../tensor/tensor.js';

/** The inputs of a block, batch by batch ([B, T, C] each, with the context its forward needs). */
export type Activations = { h: Tensor; ctx: BlockContext }[];

/** One calibration batch through a block: each linear's input ([B, T, in]) by canonical name. */
export interface RecordedBatch {
  ctx: BlockContext;
  inputs: Map<string, Tensor>;
}

function recording(name: string, inner: LinearLayer, inputs: Map<string, Tensor>): LinearLayer {
  return {
    inFeatures: inner.inFeatures,
    outFeatures: inner.outFeatures,
    forward: (x: Tensor) => {
      inputs.set(name, x);
      return inner.forward(x);
    },
    toDevice: (ctx) => inner.toDevice(ctx),
  };
}

/**
 * Runs `acts` through block `block` recording the inputs of its linears `names`; returns the records and the
 * block's outputs (the next block's inputs). Host models only (the records are read on the host).
 */
export function recordLinearInputs(
  model: CausalLM,
  block: number,
  names: readonly string[],
  acts: Activations,
): { batches: RecordedBatch[]; outputs: Activations } {
  const originals = names.map((name) => [name, model.linears().get(name)!] as const);
  const batches: RecordedBatch[] = [];
  const outputs: Activations = [];
  try {
    for (const { h, ctx } of acts) {
      const inputs = new Map<string, Tensor>();
      for (const [name, layer] of originals) model.setLinear(name, recording(name, layer, inputs));
      const y = scoped(() => {
        const out = model.block(block, h, ctx);
        keep(out.storage);
        return out;
      });
      batches.push({ ctx, inputs });
      outputs.push({ h: y, ctx });
    }
  } finally {
    for (const [name, layer] of originals) model.setLinear(name, layer);
  }
  return { batches, outputs };
}
