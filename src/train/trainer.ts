/**
 * The training loop every method shares (Weak Column Tuning, LoRA, QLoRA-style): only the given
 * trainable tensors move (WCT: the weak columns of every packed linear, src/train/wct.ts; LoRA: the A and
 * B of every adapter); everything else is frozen. Gradient accumulation over micro-batches (each
 * micro-batch's mean loss / gradAccum, as HF Trainer), global-norm clipping, AdamW with a warmup
 * schedule, validation loss every N steps (dropout off, no graph), resumable checkpoints, and a stop
 * with the step named on a non-finite loss, gradient or validation loss.
 */
import { backward, crossEntropy, tokenNll, zeroGrad } from '../autograd/index.js';
import { BatchStream, validationBatches, type Batch } from '../data/batches.js';
import type { Dataset } from '../data/dataset.js';
import type { CausalLM } from '../models/model.js';
import { hostValues, keep, readScalars, release, scoped } from '../tensor/device.js';
import type { Storage, Tensor } from '../tensor/tensor.js';
import { AdamW, clipScale, gradSquaredNorm } from './adamw.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { rssMib, type RunLog, type StepMetrics } from './run-log.js';
import { learningRate, type Schedule, type ScheduleKind } from './schedule.js';
import { OptionError } from '../errors.js';

export interface TrainConfig {
  /** Optimizer steps in all. */
  steps: number;
  microBatch: number;
  gradAccum: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  maxGradNorm: number;
  /** Data order seed. */
  seed: number;
  groupByLength: boolean;
  /** Recompute each block in the backward (src/autograd/checkpoint.ts) instead of keeping its activations. */
  gradientCheckpointing: boolean;
  padId: number;
  /** Log metrics every N optimizer steps (and on validation steps and the last). */
  logEvery: number;
  /** Validation loss every N optimizer steps (and at the end); 0 = only at the start and the end. */
  evalEvery: number;
  /** Cap on validation micro-batches (0 = all). */
  valBatches: number;
  outputDir: string;
  saveEvery: number;
  keep: number;
  recipeHash: string;
}

export interface TrainResult {
  steps: number;
  resumedFrom: number;
  /** Validation loss before the first update (null when resumed past it) and after the last. */
  valLossBefore: number | null;
  valLossAfter: number;
  trainableParams: number;
  optimizerStateBytes: number;
  /** Mean wall time of the optimizer steps run in this process, and their mean tokens/s (padding included). */
  stepSeconds: number;
  tokensPerSecond: number;
}

/** Training stopped on a non-finite loss or gradient; the newest checkpoint is the last good state. */
export class TrainingDiverged extends Error {}

/** What a method trains: named tensors (they get requiresGrad) and its train/eval switch (dropout). */
export interface Trainable {
  names: string[];
  params: Tensor[];
  setTraining(on: boolean): void;
}

/** Token-weighted mean loss over batches in eval mode (dropout off), with no graph recorded. */
export async function meanLoss(model: CausalLM, batches: Batch[], trainable: Trainable | null = null): Promise<number> {
  const params = trainable?.params ?? [];
  const flags = params.map((t) => t.requiresGrad);
  for (const t of params) t.requiresGrad = false;
  trainable?.setTraining(false);
  try {
    let sum = 0;
    let count = 0;
    for (const b of batches) {
      const { nll: onDevice, count: n } = scoped(() => {
        const r = tokenNll(model.forward(b.ids, { batch: b.batch }), b.targets);
        return { nll: keep(r.nll), count: r.count };
      });
      const nll = await hostValues(onDevice);
      release(onDevice);
      for (const x of nll) sum += x;
      count += n;
    }
    return sum / count;
  } finally {
    params.forEach((t, i) => (t.requiresGrad = flags[i]));
    trainable?.setTraining(true);
  }
}

/** The validation micro-batches of a run: in order, at most valBatches of them (0 = all). */
export function validationSet(data: Dataset, cfg: Pick<TrainConfig, 'microBatch' | 'padId' | 'valBatches'>): Batch[] {
  const all = validationBatches(data.validation, cfg.microBatch, cfg.padId);
  return cfg.valBatches > 0 ? all.slice(0, cfg.valBatches) : all;
}

/**
 * One optimizer step's forward/backward over gradAccum micro-batches, each in a scope (its activations freed when
 * its backward is done); returns each micro-batch's loss (still on the device) and the tokens seen.
 */
function accumulate(
  model: CausalLM,
  stream: BatchStream,
  gradAccum: number,
  checkpoint: boolean,
): { losses: Storage[]; tokens: number } {
  const losses: Storage[] = [];
  let tokens = 0;
  const seed = new Float32Array([1 / gradAccum]);
  for (let a = 0; a < gradAccum; a++) {
    const b = stream.next();
    tokens += b.batch * b.seq;
    if (b.lossTokens === 0) continue; // every response truncated away: nothing to learn from this one
    scoped(() => {
      const l = crossEntropy(model.forward(b.ids, { batch: b.batch, checkpoint }), b.targets);
      backward(l, seed);
      losses.push(keep(l.storage));
    });
  }
  return { losses, tokens };
}

/**
 * The step's mean loss and gradient norm, read back together (the step's one host read on the GPU): the loss as
 * Σ loss_a / gradAccum in double, as before the backend existed.
 */
async function stepFigures(losses: Storage[], params: Tensor[], gradAccum: number) {
  const sq = gradSquaredNorm(params);
  const values = await readScalars(sq === null ? losses : [...losses, sq]);
  for (const s of [...losses, sq]) release(s);
  let loss = 0;
  for (const v of values.slice(0, losses.length)) loss += v / gradAccum;
  return { loss, norm: sq === null ? 0 : Math.sqrt(values[losses.length]) };
}

interface Loop {
  model: CausalLM;
  stream: BatchStream;
  opt: AdamW;
  trainable: Trainable;
  val: Batch[];
  cfg: TrainConfig;
  schedule: Schedule;
  log: RunLog;
  state: TrainerState;
}

function diverged(step: number, what: string, cfg: TrainConfig): TrainingDiverged {
  return new TrainingDiverged(
    `wct: step ${step}: non-finite ${what}; the last good state is ${latestCheckpoint(cfg.outputDir) ?? 'the base model'}`,
  );
}

/** The validation loss after `step` (0: before training), which must be finite. */
function finiteValLoss(loss: number, step: number, cfg: TrainConfig): number {
  if (!Number.isFinite(loss)) throw diverged(step, 'validation loss', cfg);
  return loss;
}

/** One optimizer step: accumulate, check, clip, update, log; validation and a checkpoint when due. */
async function trainStep(
  step: number,
  { model, stream, opt, trainable, val, cfg, schedule, log, state }: Loop,
): Promise<{ state: TrainerState; tokens: number; seconds: number }> {
  const { names, params } = trainable;
  const t0 = performance.now();
  zeroGrad(params);
  const { losses, tokens } = accumulate(model, stream, cfg.gradAccum, cfg.gradientCheckpointing);
  const { loss, norm } = await stepFigures(losses, params, cfg.gradAccum);
  if (!Number.isFinite(loss) || !Number.isFinite(norm))
    throw diverged(step, Number.isFinite(loss) ? 'gradient norm' : 'loss', cfg);
  const lr = learningRate(schedule, step - 1);
  opt.step(lr, clipScale(norm, cfg.maxGradNorm));
  const seconds = (performance.now() - t0) / 1000;
  log.stepDone(step, loss);
  const metrics: StepMetrics = { loss, lr, grad_norm: norm, tokens_per_s: tokens / seconds, rss_mib: rssMib() };
  let valLoss = state.valLoss;
  const validate = (cfg.evalEvery > 0 && step % cfg.evalEvery === 0) || step === cfg.steps;
  if (validate) {
    log.activity('validation');
    metrics.val_loss = valLoss = finiteValLoss(await meanLoss(model, val, trainable), step, cfg);
  }
  if (step % cfg.logEvery === 0 || validate || step === cfg.steps) log.log(step, metrics);
  const next = { ...state, valLoss };
  const save = step % cfg.saveEvery === 0 || step === cfg.steps;
  if (save) log.activity('checkpoint');
  const saved = save ? { ...next, step, data: stream.state() } : next;
  if (save) await saveCheckpoint(cfg.outputDir, names, params, opt, saved, cfg.keep);
  if (validate || save) log.activity('step');
  return { state: saved, tokens, seconds };
}

/** Trains (or resumes training of) `trainable`; `openLog` opens the run log once the resumed step is known. */
export async function train(
  model: CausalLM,
  trainable: Trainable,
  data: Dataset,
  cfg: TrainConfig,
  openLog: (resumedFrom?: number) => RunLog,
): Promise<TrainResult> {
  const { names, params } = trainable;
  if (params.length === 0) throw new OptionError('method', 'nothing to train');
  for (const p of params) p.requiresGrad = true;
  trainable.setTraining(true);
  const opt = new AdamW(params, { betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const stream = new BatchStream(data.train, {
    microBatch: cfg.microBatch,
    seed: cfg.seed,
    groupByLength: cfg.groupByLength,
    padId: cfg.padId,
  });
  const val = validationSet(data, cfg);
  let state: TrainerState = { step: 0, data: stream.state(), recipeHash: cfg.recipeHash, valLoss: null };
  const resume = latestCheckpoint(cfg.outputDir);
  if (resume !== null) {
    state = loadCheckpoint(resume, names, params, opt);
    if (state.recipeHash !== cfg.recipeHash) {
      throw new OptionError(
        'output.dir',
        `${resume}: made by a different recipe (hash ${state.recipeHash.slice(0, 12)}...); use a new output.dir or delete it`,
      );
    }
    stream.restore(state.data);
  }
  const resumedFrom = state.step;
  const log = openLog(resume === null ? undefined : resumedFrom);
  log.start(cfg.steps, resumedFrom);
  let valLossBefore: number | null = null;
  if (resumedFrom === 0) {
    log.activity('validation');
    valLossBefore = finiteValLoss(await meanLoss(model, val, trainable), 0, cfg);
    log.log(0, { val_loss: valLossBefore });
    log.activity('step');
  }
  const schedule = { kind: cfg.schedule, lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps };
  let tokens = 0;
  let seconds = 0;
  try {
    for (let step = resumedFrom + 1; step <= cfg.steps; step++) {
      const r = await trainStep(step, { model, stream, opt, trainable, val, cfg, schedule, log, state });
      ({ state } = r);
      tokens += r.tokens;
      seconds += r.seconds;
    }
  } finally {
    log.close();
  }
  const valLossAfter = state.valLoss ?? finiteValLoss(await meanLoss(model, val, trainable), cfg.steps, cfg);
  const optimizerStateBytes = opt.stateBytes();
  opt.dispose();
  zeroGrad(params);
  const ran = cfg.steps - resumedFrom;
  return {
    steps: cfg.steps,
    resumedFrom,
    valLossBefore,
    valLossAfter,
    trainableParams: params.reduce((n, p) => n + p.size, 0),
    optimizerStateBytes,
    stepSeconds: ran > 0 ? seconds / ran : 0,
    tokensPerSecond: ran > 0 ? tokens / seconds : 0,
  };
}
