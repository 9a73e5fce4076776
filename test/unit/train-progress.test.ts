/**
 * The trainer reports progress on every optimizer step (not only the logged ones) with that step's loss and the
 * running mean of this process's steps, and says when a validation pass or a checkpoint save begins.
 */
import { testTrainConfig } from '../helpers/train-config.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/dataset.js';
import { applyLora, loraParameters } from '../../src/models/lora.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { RunLog, type TrainProgress } from '../../src/train/run-log.js';
import { train } from '../../src/train/trainer.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-train-progress-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('training progress', () => {
  it('fires on every step with the running mean loss, and before validation and checkpoints', async () => {
    const model = loadModel(tinyStoriesDir);
    const layers = applyLora(model, { rank: 2, alpha: 4, dropout: 0, targets: 'all' }, 0);
    const data = loadDataset(
      {
        path: path.join(dataDir, 'instruct/alpaca/alpaca-2k.json'),
        format: 'alpaca',
        template: 'alpaca',
        maxLength: 128,
        validation: { count: 4 },
        shuffleSeed: 0,
        packing: false,
      },
      loadTokenizer(tinyStoriesDir),
    );
    const cfg = testTrainConfig(tmp, {
      steps: 6,
      lr: 0.001,
      logEvery: 10, // logged lines: only the last step and the validation steps
      evalEvery: 3,
      saveEvery: 4,
    });
    const seen: TrainProgress[] = [];
    const losses: number[] = [];
    await train(model, loraParameters(layers), data, cfg, (resumeFromStep) => {
      const log = new RunLog({ dir: tmp, tensorboardDir: null, resumeFromStep, onProgress: (p) => seen.push(p) });
      const log0 = log.log.bind(log);
      log.log = (step, m) => {
        if ('loss' in m) losses.push(m.loss);
        log0(step, m);
      };
      return log;
    });
    // a step's report, then (after a validation pass or a save) the same figures again as training goes on
    const stepReports = seen.filter((p) => p.activity === 'step' && p.loss !== null);
    const steps = stepReports.filter((p, i) => i === 0 || stepReports[i - 1].done !== p.done);
    expect(steps.map((p) => p.done)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const p of stepReports) expect(p).toEqual(steps.find((q) => q.done === p.done));
    expect(seen.every((p) => p.total === 6)).toBe(true);
    // each step's own loss, and the mean of the steps so far
    const stepLosses = steps.map((p) => p.loss!);
    steps.forEach((p, i) => {
      const sum = stepLosses.slice(0, i + 1).reduce((a, b) => a + b, 0);
      expect(p.meanLoss).toBeCloseTo(sum / (i + 1), 12);
    });
    expect(new Set(stepLosses).size).toBeGreaterThan(1);
    expect(losses).toEqual([stepLosses[2], stepLosses[5]]); // logged only on steps 3 and 6: progress still saw all
    // baseline validation at 0, then validation at 3 and 6, checkpoints at 4 and 6
    const activities = seen.filter((p) => p.activity !== 'step').map((p) => `${p.activity}@${p.done}`);
    expect(activities).toEqual(['validation@0', 'validation@3', 'checkpoint@4', 'validation@6', 'checkpoint@6']);
    expect(seen[0]).toEqual({ done: 0, total: 6, loss: null, meanLoss: null, activity: 'step' });
  });
});
