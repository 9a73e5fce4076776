/**
 * A few full-parameter training steps of TinyStories-656K through the trainer (src/train/trainer.ts: the clipping
 * norm's sumSquaresInto over every gradient, then one adamwMany over them all), once on the native optimizer kernels
 * and once with those two swapped for the TypeScript reference: the same losses, gradient norms and final weights,
 * bit for bit, with clipping engaged and weight decay on.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadDataset } from '../../src/data/dataset.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { hostValues } from '../../src/tensor/device.js';
import { RunLog } from '../../src/train/run-log.js';
import { train } from '../../src/train/trainer.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';
import { testTrainConfig } from '../helpers/train-config.js';
import { native, ref } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-adamw-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Run {
  figures: { loss: number; grad_norm: number }[];
  weights: Float32Array[];
}

async function trainTiny(out: string): Promise<Run> {
  const model = loadModel(tinyStoriesDir);
  const entries = [...model.parameters()];
  const trainable = { names: entries.map(([n]) => n), params: entries.map(([, t]) => t), setTraining: () => {} };
  const data = loadDataset(
    {
      path: path.join(dataDir, 'instruct/alpaca/alpaca-2k.json'),
      format: 'alpaca',
      template: 'alpaca',
      maxLength: 128,
      validation: { count: 2 },
      shuffleSeed: 0,
      packing: false,
    },
    loadTokenizer(tinyStoriesDir),
  );
  // maxGradNorm 0.5 and lr 0.01: every step is clipped (gradScale < 1) and the weights move visibly
  const cfg = testTrainConfig(out, { steps: 4, lr: 0.01, weightDecay: 0.1, maxGradNorm: 0.5, saveEvery: 100 });
  const figures: Run['figures'] = [];
  await train(model, trainable, data, cfg, (resumeFromStep) => {
    const log = new RunLog({ dir: out, tensorboardDir: null, resumeFromStep });
    const log0 = log.log.bind(log);
    log.log = (step, m) => {
      if ('loss' in m) figures.push({ loss: m.loss, grad_norm: m.grad_norm });
      log0(step, m);
    };
    return log;
  });
  const weights = await Promise.all(trainable.params.map(async (p) => Float32Array.from(await hostValues(p.storage))));
  return { figures, weights };
}

describe('trainer on the native optimizer', () => {
  it('gives the reference optimizer its losses, norms and weights, bit for bit', async () => {
    const nativeRun = await trainTiny(path.join(tmp, 'native'));
    const spies = [
      vi.spyOn(native, 'adamwMany').mockImplementation(ref.adamwMany),
      vi.spyOn(native, 'sumSquaresInto').mockImplementation(ref.sumSquaresInto),
    ];
    const refRun = await trainTiny(path.join(tmp, 'reference'));
    for (const s of spies) {
      expect(s).toHaveBeenCalled();
      s.mockRestore();
    }
    expect(nativeRun.figures).toHaveLength(4);
    expect(nativeRun.figures.every((f) => f.grad_norm > 0.5)).toBe(true);
    expect(nativeRun.figures).toEqual(refRun.figures);
    expect(new Set(nativeRun.figures.map((f) => f.loss)).size).toBe(4);
    nativeRun.weights.forEach((w, i) =>
      expect(Buffer.from(w.buffer).equals(Buffer.from(refRun.weights[i].buffer))).toBe(true),
    );
  });
});
