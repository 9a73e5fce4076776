/**
 * --true-sequential as both reference drivers run it (xvyaward/owq main.py, IST-DASLab/gptq llama.py):
 * each group of block 0 (q/k/v, o, up/gate, down) is quantized from a Hessian taken with the earlier groups
 * already quantized. Checked by rebuilding each group's Hessian independently (the fp32 model with the
 * earlier groups' quantized weights set by hand, a capturing wrapper on the group's linears) and
 * re-quantizing: the codes must equal the pipeline's. Without --true-sequential every linear is quantized
 * from the full-precision block, which the same check tells apart.
 */
import { NO_GRADIENTS } from '../../src/quant/methods.js';
import { describe, expect, it } from 'vitest';
import { familyOf, readConfig } from '../../src/models/families/registry.js';
import { DenseLinear, type LinearLayer } from '../../src/models/linear.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { Hessian } from '../../src/quant/hessian.js';
import { owq } from '../../src/quant/owq.js';
import { NO_AWQ } from '../../src/quant/awq.js';
import { quantizeModel } from '../../src/quant/pipeline.js';
import type { QuantizedColumns } from '../../src/quant/quantized.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const config = readConfig(tinyStoriesDir);
const SEQ = 64;
const windows = Array.from({ length: 4 }, (_, w) =>
  Int32Array.from({ length: SEQ }, (_, i) => 1 + ((w * 131 + i * 17) % (config.vocabSize - 1))),
);
const OPTIONS = {
  method: 'gptq',
  bits: 3,
  groupSize: 0,
  tuning: 'minmax',
  actOrder: false,
  percdamp: 0.01,
  ...NO_GRADIENTS,
  awq: NO_AWQ,
  nOut: new Map(),
  windows,
} as const;

/** Hessians of block 0's `group` linears over the windows, with `quantized` linears set first (linears fed the same input, q/k/v, share one). */
function groupHessians(group: string[], quantized: Map<string, QuantizedColumns>): Map<string, Hessian> {
  const model: CausalLM = loadModel(tinyStoriesDir);
  for (const [name, q] of quantized)
    model.setLinear(name, new DenseLinear(new Tensor(q.dequantized, [q.rows, q.cols])));
  const hessians = new Map<string, Hessian>();
  const seen = new Map<Tensor, Hessian>();
  for (const short of group) {
    const name = `${model.blockPrefix(0)}.${short}`;
    const inner = model.linears().get(name)!;
    const wrapper: LinearLayer = {
      inFeatures: inner.inFeatures,
      outFeatures: inner.outFeatures,
      forward: (x: Tensor) => {
        let h = seen.get(x);
        if (h === undefined) {
          h = hessians.get(name) ?? new Hessian(inner.inFeatures);
          h.add(x.storage, SEQ);
          seen.set(x, h);
        }
        hessians.set(name, h);
        return inner.forward(x);
      },
      toDevice: (ctx) => inner.toDevice(ctx),
    };
    model.setLinear(name, wrapper);
  }
  for (const w of windows) {
    const { h, ctx } = model.embed(w, { batch: 1 });
    model.block(0, h, ctx);
  }
  return hessians;
}

async function requantize(name: string, h: Hessian): Promise<Uint8Array> {
  const dense = loadModel(tinyStoriesDir).linears().get(name) as DenseLinear;
  const [rows, cols] = dense.weight.shape;
  return owq(dense.weight.data as Float32Array, await h.values(), rows, cols, {
    bits: 3,
    nOut: 0,
    tuning: 'minmax',
    groupSize: 0,
    actOrder: false,
    percdamp: 0.01,
  }).codes;
}

describe('true-sequential quantization', () => {
  const groups = familyOf(config).quant.sequential;
  const prefix = 'model.layers.0';

  it('quantizes each group of block 0 from a Hessian taken with the earlier groups already quantized', async () => {
    const results = (await quantizeModel(loadModel(tinyStoriesDir), { ...OPTIONS, trueSequential: true })).layers;
    const earlier = new Map<string, QuantizedColumns>();
    for (const group of groups) {
      const hessians = groupHessians(group, earlier);
      for (const short of group) {
        const name = `${prefix}.${short}`;
        expect(Array.from(await requantize(name, hessians.get(name)!)), name).toEqual(
          Array.from(results.get(name)!.codes),
        );
        earlier.set(name, results.get(name)!);
      }
    }
  });

  it('without it, every linear comes from the full-precision block (and the later groups then differ)', async () => {
    const plain = (await quantizeModel(loadModel(tinyStoriesDir), { ...OPTIONS, trueSequential: false })).layers;
    const sequential = (await quantizeModel(loadModel(tinyStoriesDir), { ...OPTIONS, trueSequential: true })).layers;
    const all = groups.flat();
    const hessians = groupHessians(all, new Map());
    for (const short of all) {
      const name = `${prefix}.${short}`;
      expect(Array.from(await requantize(name, hessians.get(name)!)), name).toEqual(Array.from(plain.get(name)!.codes));
    }
    const down = `${prefix}.mlp.down_proj`;
    expect(Array.from(sequential.get(down)!.codes)).not.toEqual(Array.from(plain.get(down)!.codes));
  });
});
