/**
 * The calibration activations a block pipeline holds (one block's at a time: HeldActivations, in fp32 or in bf16),
 * and a record of what every linear of a block is fed: one forward of the block per calibration batch with each
 * linear wrapped, keeping each input tensor (linears fed the same tensor, q/k/v or gate/up, share it). AWQ searches
 * and clips on these records (kept in fp32 whatever the held dtype).
 */
import { bf16ToF32Array, f32ToBf16Array } from '../io/dtype.js';
import type { LinearLayer } from '../models/linear.js';
import type { BlockContext, CausalLM } from '../models/model.js';
import { hostValues, keep, onDeviceOf, release, scoped } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';

/** The inputs of a block, batch by batch ([B, T, C] each, with the context its forward needs). */
export type Activations = { h: Tensor; ctx: BlockContext }[];

/** How the activations between blocks are held: fp32, or bf16 (half the memory; widened to fp32 when read). */
export type CalibDtype = 'fp32' | 'bf16';

/** One batch as held: the fp32 tensor (host or GPU), or its bf16 bits on the host. */
interface HeldBatch {
  ctx: BlockContext;
  shape: readonly number[];
  h: Tensor | null;
  bits: Uint16Array | null;
}

/** One held batch as stored in a file: F32 values or BF16 bits, [B, T, C]. */
export interface StoredBatch {
  dtype: 'F32' | 'BF16';
  shape: number[];
  data: Float32Array | Uint16Array;
}

/**
 * A block's inputs as the pipeline holds them between blocks. In bf16 each batch is rounded to bf16 (round to
 * nearest even) when held and widened to a fresh fp32 tensor whenever a forward reads it, so every forward and
 * Hessian still computes in fp32 from the widened values. bf16 is held on the host only.
 */
export class HeldActivations {
  private constructor(
    private readonly batches: HeldBatch[],
    readonly dtype: CalibDtype,
  ) {}

  /** Takes `acts` over (in bf16 their fp32 storage is released once converted). */
  static hold(acts: Activations, dtype: CalibDtype): HeldActivations {
    return new HeldActivations(
      acts.map(({ h, ctx }) => {
        if (dtype === 'fp32') return { ctx, shape: h.shape, h, bits: null };
        const bits = f32ToBf16Array(h.data as Float32Array);
        release(h.storage);
        return { ctx, shape: h.shape, h: null, bits };
      }),
      dtype,
    );
  }

  /**
   * Batches read from a file (a resumed run), with the contexts of the same windows embedded afresh (`embedded`),
   * on their device.
   */
  static fromStored(stored: StoredBatch[], embedded: Activations, dtype: CalibDtype): HeldActivations {
    return new HeldActivations(
      stored.map((s, j) => ({
        ctx: embedded[j].ctx,
        shape: s.shape,
        h:
          s.dtype === 'F32'
            ? new Tensor(keep(onDeviceOf(embedded[j].h.storage, s.data as Float32Array)), s.shape)
            : null,
        bits: s.dtype === 'BF16' ? (s.data as Uint16Array) : null,
      })),
      dtype,
    );
  }

  get length(): number {
    return this.batches.length;
  }

  /** Batch j as fp32: the held tensor itself, or (bf16) a widened copy the caller may drop. */
  batch(j: number): { h: Tensor; ctx: BlockContext } {
    const b = this.batches[j];
    return { h: b.h ?? new Tensor(bf16ToF32Array(b.bits!), b.shape), ctx: b.ctx };
  }

  /** Every batch as fp32 (bf16: widened copies). */
  widened(): Activations {
    return this.batches.map((_, j) => this.batch(j));
  }

  /** Maps batch by batch to the next block's inputs, each input freed once its output is made. */
  map(f: (a: { h: Tensor; ctx: BlockContext }) => Tensor): HeldActivations {
    const out: Activations = [];
    for (const [j, b] of this.batches.entries()) {
      out.push({ h: f(this.batch(j)), ctx: b.ctx });
      if (b.h !== null) release(b.h.storage);
    }
    return HeldActivations.hold(out, this.dtype);
  }

  /** The batches as stored in a file (read back from the GPU when there). */
  async stored(): Promise<StoredBatch[]> {
    const out: StoredBatch[] = [];
    for (const b of this.batches) {
      const shape = [...b.shape];
      if (b.bits !== null) out.push({ dtype: 'BF16', shape, data: b.bits });
      else out.push({ dtype: 'F32', shape, data: (await hostValues(b.h!.storage)) as Float32Array });
    }
    return out;
  }

  free(): void {
    for (const b of this.batches) if (b.h !== null) release(b.h.storage);
  }
}

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
