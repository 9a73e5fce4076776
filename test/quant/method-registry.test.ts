/**
 * A method added through the registry alone (src/quant/methods.ts), with no change to the pipeline: RTN after a
 * per-block transform that scales the first scaling group's norm by s and unscales the group's linears' input
 * columns by 1/s (a function-preserving rewrite, as AWQ's fold is). Quantized end to end into a packed
 * checkpoint: the written norm is the scaled one, each scaled linear's packed codes are RTN's of W / s (so the
 * quantizer saw the transformed block), the transform ran once per block, and progress counted every step.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateData } from '../../src/eval/evaluate-data.js';
import { readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { familyOf } from '../../src/models/families/registry.js';
import type { DenseLinear } from '../../src/models/linear.js';
import { loadModel } from '../../src/models/load.js';
import type { PackedLinear } from '../../src/models/packed-linear.js';
import { unpackCodes } from '../../src/native/packed.js';
import { registerMethod, type BlockToTransform } from '../../src/quant/methods.js';
import type { QuantProgress, QuantStage } from '../../src/quant/pipeline.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { rtn } from '../../src/quant/rtn.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-method-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** s_c = 1 + 0.5 sin(c): a per-channel scale far enough from 1 to change every RTN code grid. */
const scale = (c: number) => 1 + 0.5 * Math.sin(c);
const transformed: number[] = [];

registerMethod({
  name: 'toy-scaled-rtn',
  describe: 'test only: RTN after scaling a norm by s and its linears by 1/s',
  statistic: () => 'none',
  weakColumns: false,
  outliers: false,
  awq: 'none',
  defaultTuning: 'minmax',
  transform: () => ({ steps: () => 1, run: (b, step) => scaleBlock(b, step) }),
  quantizeLinear: (l, s) => rtn(l.weight, l.rows, l.cols, { bits: s.bits, groupSize: s.groupSize }),
});

function scaleBlock({ model, block, prefix }: BlockToTransform, step: (stage: QuantStage, item: string) => void) {
  transformed.push(block);
  const group = familyOf(model.config).quant.scaling[0];
  const norm = model.norm(`${prefix}.${group.prev}`).weight.data as Float32Array;
  for (let c = 0; c < norm.length; c++) norm[c] *= scale(c);
  for (const short of group.linears) {
    const w = (model.linears().get(`${prefix}.${short}`) as DenseLinear).weight;
    const [rows, cols] = w.shape;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) (w.data as Float32Array)[r * cols + c] /= scale(c);
  }
  step('transform', prefix);
  return {};
}

describe('a method registered from outside the pipeline', () => {
  it('quantizes end to end with its block transform', async () => {
    const out = path.join(tmp, 'toy');
    const progress: QuantProgress[] = [];
    await quantizeCheckpoint(tinyStoriesDir, out, quantizeOptions({ method: 'toy-scaled-rtn', wbits: 4 }), {
      force: false,
      onProgress: (p) => progress.push(p),
    });

    const fp = loadModel(tinyStoriesDir);
    const packed = loadModel(out);
    const spec = familyOf(fp.config);
    expect(readQuantConfig(out).method).toBe('toy-scaled-rtn');
    expect(transformed).toEqual([...Array(fp.numBlocks).keys()]);
    expect(progress.filter((p) => p.stage === 'transform').map((p) => p.block)).toEqual(transformed);
    expect(progress.map((p) => p.done)).toEqual(progress.map((_, i) => i + 1));
    expect(progress.at(-1)!.done).toBe(progress[0].total);
    expect(progress[0].total).toBe(fp.numBlocks * (1 + spec.blockLinears(fp.config).length));

    const group = spec.quant.scaling[0];
    for (let block = 0; block < fp.numBlocks; block++) {
      const prefix = fp.blockPrefix(block);
      const original = fp.norm(`${prefix}.${group.prev}`).weight.data as Float32Array;
      const written = packed.norm(`${prefix}.${group.prev}`).weight.data as Float32Array;
      original.forEach((v, c) => expect(written[c]).toBeCloseTo(v * scale(c), 5));
      for (const short of group.linears) {
        const w = (fp.linears().get(`${prefix}.${short}`) as DenseLinear).weight;
        const [rows, cols] = w.shape;
        const scaled = Float32Array.from(w.data as Float32Array, (v, i) => v / scale(i % cols));
        const expected = rtn(scaled, rows, cols, { bits: 4, groupSize: 0 }).codes;
        const { qweight } = (packed.linears().get(`${prefix}.${short}`) as PackedLinear).packed;
        expect(Array.from(unpackCodes(qweight, rows, cols, 4)), `${prefix}.${short}`).toEqual(Array.from(expected));
      }
    }

    const text = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
    const ppl = (await evaluateData(packed, loadTokenizer(out), text, { seqlen: 128 })).ppl;
    const fpPpl = (await evaluateData(fp, loadTokenizer(tinyStoriesDir), text, { seqlen: 128 })).ppl;
    expect(Number.isFinite(ppl)).toBe(true);
    expect(ppl / fpPpl).toBeGreaterThan(1);
    expect(ppl / fpPpl).toBeLessThan(1.5);
  });
});
