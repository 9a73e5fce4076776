import type { TrainConfig } from '../../src/train/trainer.js';

/** A small constant-rate training configuration writing into `outputDir`; `o` overrides any field. */
export function testTrainConfig(outputDir: string, o: Partial<TrainConfig> = {}): TrainConfig {
  return {
    steps: 3,
    microBatch: 2,
    gradAccum: 1,
    lr: 0.01,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0,
    schedule: 'constant',
    warmupSteps: 0,
    maxGradNorm: 1,
    seed: 0,
    groupByLength: false,
    gradientCheckpointing: false,
    padId: 2,
    logEvery: 1,
    evalEvery: 0,
    valBatches: 1,
    outputDir,
    saveEvery: 1,
    keep: 1,
    recipeHash: 'test',
    ...o,
  };
}
