/**
 * Whole-model logits against golden values from independent PyTorch references of HF's Llama and OPT
 * (../shared/data/golden/*.json): top-10 ids equal, logits within 1e-4 absolute, mean NLL within 1e-5
 * relative; TinyStories' greedy continuation from BOS equal token for token.
 */
import { collect } from '../helpers/errors.js';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenNll } from '../../src/autograd/index.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { generate } from '../../src/models/generate.js';
import { loadModel } from '../../src/models/load.js';
import { dataDir, optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const LOGIT_ABS_TOL = 1e-4;
const NLL_REL_TOL = 1e-5;

interface Golden {
  token_ids: number[];
  mean_nll: number;
  positions: Record<
    string,
    { top10_ids: number[]; top10_logits: number[]; logit_l2: number; logit_mean: number; first8: number[] }
  >;
  greedy_from_bos_64?: number[];
}

function golden(name: string): Golden {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'golden', `${name}.json`), 'utf8')) as Golden;
}

function topK(row: Float32Array, k: number): number[] {
  return Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k);
}

function checkAgainstGolden(dir: string, g: Golden): void {
  const model = loadModel(dir);
  const ids = Int32Array.from(g.token_ids);
  const logits = model.forward(ids, { batch: 1 });
  const vocab = logits.shape[2];
  for (const [pos, want] of Object.entries(g.positions)) {
    const row = logits.data.subarray(Number(pos) * vocab, (Number(pos) + 1) * vocab) as Float32Array;
    expect(topK(row, 10), `top-10 ids at position ${pos}`).toEqual(want.top10_ids);
    want.top10_ids.forEach((id, i) => expect(Math.abs(row[id] - want.top10_logits[i])).toBeLessThan(LOGIT_ABS_TOL));
    want.first8.forEach((v, i) => expect(Math.abs(row[i] - v)).toBeLessThan(LOGIT_ABS_TOL));
    const l2 = Math.sqrt(row.reduce((s, v) => s + v * v, 0));
    expect(Math.abs(l2 - want.logit_l2) / want.logit_l2).toBeLessThan(NLL_REL_TOL * 10);
  }
  const { nll, count } = tokenNll(logits, shiftedTargets(ids, ids.length));
  // nll is a FloatArray (Float32Array | Float64Array): a union TypeScript cannot call reduce on
  let nllSum = 0;
  for (const v of nll as Float32Array) nllSum += v;
  const meanNll = nllSum / count;
  expect(Math.abs(meanNll - g.mean_nll) / g.mean_nll).toBeLessThan(NLL_REL_TOL);
}

describe('golden logits', () => {
  it('TinyStories-656K (Llama, GQA, tied embeddings) matches the reference', () => {
    checkAgainstGolden(tinyStoriesDir, golden('tinystories-656k'));
  });

  it('opt-tiny-random (OPT, fp16-stored) matches the reference', () => {
    checkAgainstGolden(optTinyDir, golden('opt-tiny-random'));
  });

  it('TinyStories-656K greedy generation from BOS reproduces the reference 64 tokens', async () => {
    const want = golden('tinystories-656k').greedy_from_bos_64!;
    const model = loadModel(tinyStoriesDir);
    const got = await collect(generate(model, Int32Array.of(want[0]), { maxNewTokens: want.length - 1 }));
    expect([want[0], ...got]).toEqual(want);
  });

  it('KV-cache decoding gives the same logits as a full forward (both families)', () => {
    for (const dir of [tinyStoriesDir, optTinyDir]) {
      const model = loadModel(dir);
      const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % 1000);
      const full = model.forward(ids, { batch: 1 });
      const cache = model.newCache(12);
      model.forward(ids.subarray(0, 7), { batch: 1, cache });
      const stepped = [7, 8, 9, 10, 11].map((t) => model.forward(ids.subarray(t, t + 1), { batch: 1, cache }));
      const vocab = full.shape[2];
      stepped.forEach((logits, j) => {
        const want = full.data.subarray((7 + j) * vocab, (8 + j) * vocab);
        let maxDiff = 0;
        for (let i = 0; i < vocab; i++) maxDiff = Math.max(maxDiff, Math.abs(logits.data[i] - want[i]));
        expect(maxDiff).toBeLessThan(LOGIT_ABS_TOL);
      });
    }
  });
});
