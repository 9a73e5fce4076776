/**
 * Zero-shot scoring on the GPU (the KV cache on the device, rewound per continuation) gives the CPU's
 * log-likelihoods and greedy flags on the first PIQA and HellaSwag questions, in both BOS settings.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateTask } from '../../src/eval/zeroshot/evaluate-task.js';
import { defaultTaskDir } from '../../src/eval/zeroshot/run-tasks.js';
import { TASKS } from '../../src/eval/zeroshot/tasks.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { tinyStoriesDir } from '../helpers/paths.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();

describe('zero-shot scoring on the GPU', () => {
  it('PIQA and HellaSwag: the CPU’s log-likelihoods (1e-4) and greedy flags', async () => {
    const tokenizer = loadTokenizer(tinyStoriesDir);
    const model = loadModel(tinyStoriesDir);
    for (const task of ['piqa', 'hellaswag']) {
      const spec = TASKS[task];
      const docs = spec.load(path.join(defaultTaskDir(), spec.defaultFile!), 8);
      for (const bos of [false, true]) {
        await model.toDevice(null);
        const cpu = (await evaluateTask(model, tokenizer, spec, docs, { bos })).scores;
        await model.toDevice(gpu().ctx);
        const dev = (await evaluateTask(model, tokenizer, spec, docs, { bos })).scores;
        cpu.forEach((doc, d) =>
          doc.forEach((s, j) => {
            expect(Math.abs(dev[d][j].ll - s.ll), `${task} doc ${d} choice ${j}`).toBeLessThan(1e-4);
            expect(dev[d][j].greedy).toBe(s.greedy);
          }),
        );
      }
    }
    await model.toDevice(null);
  });
});
