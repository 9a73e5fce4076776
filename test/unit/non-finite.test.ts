/**
 * A model that computes NaN or infinite values is an error naming where, never a NaN result: the evaluation
 * window (src/eval/perplexity.ts), the token position of generation (src/models/generate.ts) and the training
 * step, validation included (src/train/trainer.ts).
 */
import { testTrainConfig } from '../helpers/train-config.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { causalExample } from '../../src/data/example.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { generate } from '../../src/models/generate.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { applyLora, loraParameters } from '../../src/models/lora.js';
import { RunLog } from '../../src/train/run-log.js';
import { TrainingDiverged, train } from '../../src/train/trainer.js';
import { collect, inputErrorMessageAsync } from '../helpers/errors.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-nonfinite-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** TinyStories-656K with the embedding row of `token` poisoned (tied: its logit too, so every position goes NaN). */
function poisoned(token: number, value = Number.NaN) {
  const model = loadModel(tinyStoriesDir);
  const table = model.parameters().get('model.embed_tokens.weight')!;
  table.data.fill(value, token * model.config.hiddenSize, (token + 1) * model.config.hiddenSize);
  return model;
}

const ids = (n: number, bad?: { at: number; token: number }) =>
  Int32Array.from({ length: n }, (_, i) => (bad?.at === i ? bad.token : 10 + ((i * 7) % 500)));

describe('non-finite values are errors naming where', () => {
  it('perplexity names the window', async () => {
    // logits of uniform 0, NaN in every row of a chunk that holds token 1999
    const V = 2048;
    const model = {
      forward(input: Int32Array, { batch }: { batch: number }) {
        const seq = input.length / batch;
        const logits = new Float32Array(input.length * V);
        for (let b = 0; b < batch; b++)
          if (input.subarray(b * seq, (b + 1) * seq).includes(1999))
            logits.fill(Number.NaN, b * seq * V, (b + 1) * seq * V);
        return new Tensor(logits, [batch, seq, V]);
      },
    } as unknown as CausalLM;
    const tokens = (bad?: number) => Int32Array.from({ length: 64 }, (_, i) => (i === bad ? 1999 : i % 100));
    expect((await perplexity(model, tokens(), { seqlen: 16 })).ppl).toBeCloseTo(V, 4);
    expect(
      await inputErrorMessageAsync(() =>
        perplexity(model, tokens(40), { seqlen: 16, batchSize: 2, label: 'wikitext2' }),
      ),
    ).toBe(
      "wikitext2: window 3 of 4 (tokens 32..47): the NLL is NaN (the model's weights, deltas or adapter give non-finite logits)",
    );
  });

  it('a batch of 0 chunks is refused, not an endless loop', async () => {
    const model = { forward: () => new Tensor(new Float32Array(0), [0]) } as unknown as CausalLM;
    await expect(perplexity(model, new Int32Array(64), { seqlen: 16, batchSize: 0 })).rejects.toThrow(RangeError);
  });

  it('an infinite weight too', async () => {
    const model = poisoned(1999, Number.POSITIVE_INFINITY);
    expect(
      await inputErrorMessageAsync(() => perplexity(model, ids(32, { at: 3, token: 1999 }), { seqlen: 16 })),
    ).toMatch(/^evaluation: window 1 of 2 \(tokens 0\.\.15\): the NLL is NaN/);
  });

  it('generation names the token position instead of printing token 0', async () => {
    const model = poisoned(1999);
    const prompt = Int32Array.of(1, 1999);
    expect(await inputErrorMessageAsync(() => collect(generate(model, prompt, { maxNewTokens: 4 })))).toBe(
      "model output: token position 2: logit 0 is NaN (the model's weights, deltas or adapter give non-finite values)",
    );
    expect(
      await inputErrorMessageAsync(() => collect(generate(model, prompt, { maxNewTokens: 4, temperature: 1 }))),
    ).toMatch(/^model output: token position 2: /);
  });

  it('training stops at step 0 when the validation loss is not finite', async () => {
    const model = poisoned(1999);
    const layers = applyLora(model, { rank: 2, alpha: 4, dropout: 0, targets: 'all' }, 0);
    const clean = causalExample(ids(24), 1);
    const data = {
      train: [clean, clean],
      validation: [causalExample(ids(24, { at: 5, token: 1999 }), 1)],
      truncated: 0,
      dropped: 0,
      source: 'test',
      tokens: 72,
    };
    const outputDir = path.join(tmp, 'run');
    const cfg = testTrainConfig(outputDir, {
      steps: 2,
      microBatch: 1,
      lr: 1e-3,
      evalEvery: 1,
      valBatches: 0,
      saveEvery: 10,
    });
    let error: unknown;
    try {
      await train(model, loraParameters(layers), data, cfg, () => new RunLog({ dir: outputDir, tensorboardDir: null }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingDiverged);
    expect((error as Error).message).toBe(
      'wct: step 0: non-finite validation loss; the last good state is the base model',
    );
  });
});
