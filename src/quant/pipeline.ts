/**
 * The block-by-block driver every calibrated quantizer shares (DESIGN.md section 4): capture the inputs of
 * block 0 for the calibration windows; for each block, run its inputs through it while accumulating every
 * linear's input Hessian, quantize the block's linears, then recompute the block's outputs with the
 * quantized block: they are the next block's inputs. One block's activations are held at a time.
 * With --true-sequential each group of linears (q/k/v, o, up/gate, down) is quantized before the next
 * group's Hessians are taken. RTN needs no calibration and quantizes every linear on its own.
 */
import type { ModelConfig } from '../io/hf-config.js';
import { DenseLinear, type LinearLayer } from '../models/linear.js';
import type { BlockContext, CausalLM } from '../models/model.js';
import { Tensor } from '../tensor/tensor.js';
import { quantFamily } from './family.js';
import { Hessian } from './hessian.js';
import { owq } from './owq.js';
import type { QuantizedColumns } from './quantized.js';
import type { Tuning } from './quantizer.js';
import { rtn } from './rtn.js';

export type QuantMethod = 'rtn' | 'gptq' | 'owq';

export interface QuantizeOptions {
  method: QuantMethod;
  bits: number;
  /** 0 = per row. */
  groupSize: number;
  tuning: Tuning;
  actOrder: boolean;
  trueSequential: boolean;
  /** Weak columns per linear kind (name relative to the block prefix); all 0 for RTN and GPTQ. */
  nOut: Map<string, number>;
  percdamp: number;
  /** Calibration windows of equal length (unused by RTN). */
  windows: Int32Array[];
  /** Sequences per block forward pass. */
  batchSize?: number;
  onProgress?: (p: QuantProgress) => void;
}

export interface QuantProgress {
  block: number;
  blocks: number;
  /** What just finished: a layer's name, or 'calibration' / 'outputs'. */
  step: string;
}

/** Dense weight of a linear still in full precision (the pipeline replaces each only once). */
function denseOf(name: string, layer: LinearLayer): DenseLinear {
  if (!(layer instanceof DenseLinear)) throw new Error(`quantize: ${name} is not a full-precision linear`);
  return layer;
}

/** Accumulates each wrapped linear's input Hessian; linears fed the same tensor (q, k, v) share one. */
class HessianCollector {
  readonly hessians = new Map<string, Hessian>();
  private readonly byInput = new WeakMap<Tensor, Hessian>();

  wrap(name: string, inner: LinearLayer): LinearLayer {
    return {
      inFeatures: inner.inFeatures,
      outFeatures: inner.outFeatures,
      forward: (x: Tensor) => {
        let h = this.byInput.get(x);
        if (h === undefined) {
          h = this.hessians.get(name) ?? new Hessian(inner.inFeatures);
          h.add(x.data as Float32Array, x.shape[1]);
          this.byInput.set(x, h);
        }
        this.hessians.set(name, h);
        return inner.forward(x);
      },
    };
  }
}

/** Calibration activations of one block boundary, batched, with the contexts the blocks need. */
interface Activations {
  batches: { h: Tensor; ctx: BlockContext }[];
}

function embedWindows(model: CausalLM, windows: Int32Array[], batchSize: number): Activations {
  const batches: Activations['batches'] = [];
  for (let i = 0; i < windows.length; i += batchSize) {
    const group = windows.slice(i, i + batchSize);
    const ids = new Int32Array(group.length * group[0].length);
    group.forEach((w, j) => ids.set(w, j * w.length));
    batches.push(model.embed(ids, { batch: group.length }));
  }
  return { batches };
}

function runBlock(model: CausalLM, block: number, acts: Activations): Activations {
  return { batches: acts.batches.map(({ h, ctx }) => ({ h: model.block(block, h, ctx), ctx })) };
}

function quantizeLinear(w: Float32Array, h: Hessian | undefined, rows: number, cols: number, nOut: number, o: QuantizeOptions): QuantizedColumns {
  if (o.method === 'rtn') return rtn(w, rows, cols, { bits: o.bits, groupSize: o.groupSize });
  if (h === undefined) throw new Error('quantize: no Hessian was captured');
  return owq(w, h.h, rows, cols, { bits: o.bits, nOut, tuning: o.tuning, groupSize: o.groupSize, actOrder: o.actOrder, percdamp: o.percdamp });
}

/** Quantizes every block linear of `model` in place (each becomes its fp32 fake-quantized Ŵ) and returns the results by name. */
export function quantizeModel(model: CausalLM, o: QuantizeOptions): Map<string, QuantizedColumns> {
  const family = quantFamily(model.config as ModelConfig);
  const results = new Map<string, QuantizedColumns>();
  const calibrated = o.method !== 'rtn';
  let acts = calibrated ? embedWindows(model, o.windows, o.batchSize ?? 8) : null;
  const groups = o.trueSequential ? family.sequential : [family.linears.map((l) => l.name)];
  for (let block = 0; block < model.numBlocks; block++) {
    const prefix = model.blockPrefix(block);
    for (const group of groups) {
      const collector = new HessianCollector();
      if (acts !== null) {
        const originals = group.map((n) => [`${prefix}.${n}`, model.linears().get(`${prefix}.${n}`)!] as const);
        for (const [name, layer] of originals) model.setLinear(name, collector.wrap(name, layer));
        for (const { h, ctx } of acts.batches) model.block(block, h, ctx); // outputs unused: only the Hessians
        for (const [name, layer] of originals) model.setLinear(name, layer);
        o.onProgress?.({ block, blocks: model.numBlocks, step: 'calibration' });
      }
      for (const short of group) {
        const name = `${prefix}.${short}`;
        const dense = denseOf(name, model.linears().get(name)!);
        const [rows, cols] = dense.weight.shape;
        const q = quantizeLinear(dense.weight.data as Float32Array, collector.hessians.get(name), rows, cols, o.nOut.get(short) ?? 0, o);
        results.set(name, q);
        model.setLinear(name, new DenseLinear(new Tensor(q.dequantized, [rows, cols]), dense.bias));
        o.onProgress?.({ block, blocks: model.numBlocks, step: name });
      }
    }
    if (acts !== null) {
      acts = runBlock(model, block, acts);
      o.onProgress?.({ block, blocks: model.numBlocks, step: 'outputs' });
    }
  }
  return results;
}
