/**
 * Whole-model logits against golden values from independent PyTorch references of HF's Llama and OPT
 * (../shared/data/golden/*.json): top-10 ids equal, logits within 1e-4 absolute, mean NLL within 1e-5
 * relative; TinyStories' greedy continuation from BOS equal token for token.
 */
import { describe, expect, it } from 'vitest';
import { generate } from '../../src/models/generate.js';
import { loadModel } from '../../src/models/load.js';
import { collect } from '../helpers/errors.js';
import { checkAgainstGolden, golden, LOGIT_ABS_TOL } from '../helpers/golden-logits.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

describe('golden logits', () => {
  it('TinyStories-656K (Llama, GQA, tied embeddings) matches the reference', async () => {
    await checkAgainstGolden(loadModel(tinyStoriesDir), golden('tinystories-656k'));
  });

  it('opt-tiny-random (OPT, fp16-stored) matches the reference', async () => {
    await checkAgainstGolden(loadModel(optTinyDir), golden('opt-tiny-random'));
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
