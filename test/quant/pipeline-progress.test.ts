/**
 * The pipeline's progress counts exactly the steps it runs: with --true-sequential a Llama block is 4 calibration
 * passes, 7 linears and 1 output pass (12 steps; the old count said 9), without it 1 + 7 + 1, and RTN 7; AWQ 3 scaling
 * groups (v -> o is skipped under grouped-query attention), 5 clipped linears, 7 linears and 1 output pass, or with
 * OWQ the 3 groups before its 1 + 7 + 1; a gradient pass (gwq, owq --sensitivity fisher) S 'gradients' steps
 * before the first block; `done` rises by one per report and ends at `total`.
 */
import { NO_GRADIENTS } from '../../src/quant/methods.js';
import { describe, expect, it } from 'vitest';
import { familyOf } from '../../src/models/families/registry.js';
import { loadModel } from '../../src/models/load.js';
import { NO_AWQ } from '../../src/quant/awq.js';
import { quantizeModel, quantStatus, type QuantProgress } from '../../src/quant/pipeline.js';
import { weakCounts } from '../../src/quant/weak-count.js';
import { Rng } from '../../src/util/rng.js';
import { tinyStoriesDir } from '../helpers/paths.js';

function windows(n: number, len: number, vocab: number): Int32Array[] {
  const rng = new Rng(3);
  return Array.from({ length: n }, () => Int32Array.from({ length: len }, () => Math.floor(rng.next() * vocab)));
}

describe('quantization progress', () => {
  const cases = [
    { method: 'gptq', trueSequential: true, perBlock: 4 + 7 + 1 },
    { method: 'owq', trueSequential: false, perBlock: 1 + 7 + 1 },
    { method: 'rtn', trueSequential: false, perBlock: 7 },
    { method: 'awq', trueSequential: false, perBlock: 3 + 5 + 7 + 1, awq: { scale: true, clip: true, grid: 4 } },
    { method: 'owq', trueSequential: false, perBlock: 3 + 1 + 7 + 1, awq: { scale: true, clip: false, grid: 4 } },
    { method: 'gwq', trueSequential: false, perBlock: 7, gradients: { ...NO_GRADIENTS, gradSamples: 3 } },
    {
      method: 'gwq',
      trueSequential: true,
      perBlock: 4 + 7 + 1,
      gradients: { ...NO_GRADIENTS, gwq: { score: 'taylor', quantizer: 'gptq', outlierRatio: 0.05 }, gradSamples: 2 },
    },
    {
      method: 'owq',
      trueSequential: false,
      perBlock: 1 + 7 + 1,
      gradients: { ...NO_GRADIENTS, sensitivity: 'fisher', gradSamples: 2 },
    },
  ] as const;
  for (const c of cases) {
    const { method, trueSequential, perBlock } = c;
    const awq = 'awq' in c ? c.awq : undefined;
    const gradients = 'gradients' in c ? c.gradients : NO_GRADIENTS;
    const S = 'gradients' in c ? c.gradients.gradSamples : 0;
    const what = `${method}${trueSequential ? ' --true-sequential' : ''}${awq && method !== 'awq' ? ' --awq-scale' : ''}${S > 0 ? ` with ${S} gradient windows` : ''}`;
    it(`${what}: ${S > 0 ? `${S} + ` : ''}${perBlock} steps per block, counted exactly`, async () => {
      const model = loadModel(tinyStoriesDir);
      const seen: QuantProgress[] = [];
      await quantizeModel(model, {
        method,
        bits: 4,
        groupSize: 0,
        tuning: 'minmax',
        actOrder: false,
        trueSequential,
        percdamp: 0.01,
        ...gradients,
        awq: awq ?? NO_AWQ,
        nOut: weakCounts(model.config, 4, method === 'owq' ? { targetRank: 2 } : null),
        windows: method === 'rtn' ? [] : windows(4, 32, model.config.vocabSize),
        onProgress: (p) => seen.push(p),
      });
      expect(familyOf(model.config).blockLinears(model.config)).toHaveLength(7);
      expect(seen.map((p) => p.done)).toEqual(seen.map((_, i) => i + 1));
      const total = S + model.numBlocks * perBlock;
      expect(seen.every((p) => p.total === total)).toBe(true);
      expect(seen.at(-1)!.done).toBe(total);
      expect(seen.slice(0, S).map((p) => [p.stage, quantStatus(p)])).toEqual(
        Array.from({ length: S }, (_, s) => ['gradients', `gradients: window ${s + 1}/${S}`]),
      );
      expect(seen.every((p) => p.blocks === model.numBlocks)).toBe(true);
      if (awq !== undefined) {
        const scale = seen.find((p) => p.stage === 'scale')!;
        expect(quantStatus(scale)).toBe(`block 1/${model.numBlocks}: scale model.layers.0.input_layernorm`);
        expect(seen.filter((p) => p.stage === 'clip').length).toBe(awq.clip ? 5 * model.numBlocks : 0);
      }
      const q = seen.find((p) => p.stage === 'quantize' && p.block === 1)!;
      expect(quantStatus(q)).toBe(`block 2/${model.numBlocks}: quantize ${q.item}`);
      expect(seen.filter((p) => p.stage === 'quantize').map((p) => p.item)).toEqual(
        [...Array(model.numBlocks).keys()].flatMap((b) =>
          (trueSequential
            ? familyOf(model.config).quant.sequential.flat()
            : familyOf(model.config)
                .blockLinears(model.config)
                .map((l) => l.name)
          ).map((n) => `${model.blockPrefix(b)}.${n}`),
        ),
      );
    });
  }
});
