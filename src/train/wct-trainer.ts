/**
 * Weak Column Tuning (DESIGN.md section 6): the trainable parameters are exactly the weak columns of every
 * packed linear (fp32, [out, n_out] each); packed codes, scales, embeddings, norms and lm_head stay frozen.
 * Forward y = x Ŵᵀ, backward dX = dY Ŵ through the packed kernels and dWeak = dYᵀ X[:, weak].
 * The loop: gradient accumulation over micro-batches (each micro-batch's mean loss / gradAccum, as HF
 * Trainer), global-norm clipping, AdamW with a warmup schedule, validation loss every N steps,
 * resumable checkpoints, a stop with the step named on a non-finite loss or gradient.
 */
import { backward, crossEntropy, tokenNll, zeroGrad } from '../autograd/index.js';
import { BatchStream, validationBatches, type Batch } from '../data/batches.js';
import type { Dataset } from '../data/dataset.js';
import type { CausalLM } from '../models/model.js';
import { packedLinearsOf } from '../models/weak-deltas.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdamW, clipGradNorm } from './adamw.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { rssMib, type RunLog, type StepMetrics } from './run-log.js';
import { learningRate, type Schedule, type ScheduleKind } from './schedule.js';

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
}

/** Training stopped on a non-finite loss or gradient; the newest checkpoint is the last good state. */
export class TrainingDiverged extends Error {}

/** The weak-column tensors of every packed linear that has any, made trainable, with their layer names. */
export function weakParameters(model: CausalLM): { names: string[]; params: Tensor[] } {
  const names: string[] = [];
  const params: Tensor[] = [];
  for (const [name, layer] of packedLinearsOf(model)) {
    if (layer.weak.size === 0) continue;
    layer.weak.requiresGrad = true;
    names.push(name);
    params.push(layer.weak);
  }
  if (params.length === 0) throw new RangeError('wct: the model has no weak columns to train (quantize with OWQ target_bit or target_rank)');
  return { names, params };
}

/** Token-weighted mean loss over batches, with no graph recorded. */
export function meanLoss(model: CausalLM, batches: Batch[]): number {
  const weak = [...packedLinearsOf(model).values()].map((l) => l.weak);
  const flags = weak.map((t) => t.requiresGrad);
  for (const t of weak) t.requiresGrad = false;
  try {
    let sum = 0;
    let count = 0;
    for (const b of batches) {
      const { nll, count: n } = tokenNll(model.forward(b.ids, { batch: b.batch }), b.targets);
      for (const x of nll) sum += x;
      count += n;
    }
    return sum / count;
  } finally {
    weak.forEach((t, i) => (t.requiresGrad = flags[i]));
  }
}

/** The validation micro-batches of a run: in order, at most valBatches of them (0 = all). */
export function validationSet(data: Dataset, cfg: Pick<TrainConfig, 'microBatch' | 'padId' | 'valBatches'>): Batch[] {
  const all = validationBatches(data.validation, cfg.microBatch, cfg.padId);
  return cfg.valBatches > 0 ? all.slice(0, cfg.valBatches) : all;
}

/** One optimizer step's forward/backward over gradAccum micro-batches; returns the mean loss and tokens seen. */
function accumulate(model: CausalLM, stream: BatchStream, gradAccum: number): { loss: number; tokens: number } {
  let loss = 0;
  let tokens = 0;
  const seed = new Float32Array([1 / gradAccum]);
  for (let a = 0; a < gradAccum; a++) {
    const b = stream.next();
    tokens += b.batch * b.seq;
    if (b.lossTokens === 0) continue; // every response truncated away: nothing to learn from this one
    const l = crossEntropy(model.forward(b.ids, { batch: b.batch }), b.targets);
    loss += l.data[0] / gradAccum;
    backward(l, seed);
  }
  return { loss, tokens };
}

interface Loop {
  model: CausalLM;
  stream: BatchStream;
  opt: AdamW;
  names: string[];
  params: Tensor[];
  val: Batch[];
  cfg: TrainConfig;
  schedule: Schedule;
  log: RunLog;
  state: TrainerState;
}

/** One optimizer step: accumulate, check, clip, update, log; validation and a checkpoint when due. */
function trainStep(step: number, { model, stream, opt, names, params, val, cfg, schedule, log, state }: Loop): TrainerState {
  const t0 = performance.now();
  zeroGrad(params);
  const { loss, tokens } = accumulate(model, stream, cfg.gradAccum);
  const norm = clipGradNorm(params, cfg.maxGradNorm);
  if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
    throw new TrainingDiverged(
      `wct: step ${step}: non-finite ${Number.isFinite(loss) ? 'gradient norm' : 'loss'}; the last good state is ${latestCheckpoint(cfg.outputDir) ?? 'the base model'}`,
    );
  }
  const lr = learningRate(schedule, step - 1);
  opt.step(lr);
  const metrics: StepMetrics = { loss, lr, grad_norm: norm, tokens_per_s: tokens / ((performance.now() - t0) / 1000), rss_mib: rssMib() };
  let valLoss = state.valLoss;
  if ((cfg.evalEvery > 0 && step % cfg.evalEvery === 0) || step === cfg.steps) metrics.val_loss = valLoss = meanLoss(model, val);
  if (step % cfg.logEvery === 0 || metrics.val_loss !== undefined || step === cfg.steps) log.log(step, metrics);
  const next = { ...state, valLoss };
  if (step % cfg.saveEvery !== 0 && step !== cfg.steps) return next;
  const saved = { ...next, step, data: stream.state() };
  saveCheckpoint(cfg.outputDir, names, params, opt, saved, cfg.keep);
  return saved;
}

/** Trains (or resumes training of) the weak columns; `openLog` opens the run log once the resumed step is known. */
export function trainWeakColumns(model: CausalLM, data: Dataset, cfg: TrainConfig, openLog: (resumedFrom?: number) => RunLog): TrainResult {
  const { names, params } = weakParameters(model);
  const opt = new AdamW(params, { betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const stream = new BatchStream(data.train, { microBatch: cfg.microBatch, seed: cfg.seed, groupByLength: cfg.groupByLength, padId: cfg.padId });
  const val = validationSet(data, cfg);
  let state: TrainerState = { step: 0, data: stream.state(), recipeHash: cfg.recipeHash, valLoss: null };
  const resume = latestCheckpoint(cfg.outputDir);
  if (resume !== null) {
    state = loadCheckpoint(resume, names, params, opt);
    if (state.recipeHash !== cfg.recipeHash) {
      throw new RangeError(`${resume}: made by a different recipe (hash ${state.recipeHash.slice(0, 12)}...); use a new output.dir or delete it`);
    }
    stream.restore(state.data);
  }
  const resumedFrom = state.step;
  const log = openLog(resume === null ? undefined : resumedFrom);
  const valLossBefore = resumedFrom === 0 ? meanLoss(model, val) : null;
  if (valLossBefore !== null) log.log(0, { val_loss: valLossBefore });
  const schedule = { kind: cfg.schedule, lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps };
  log.start(cfg.steps, resumedFrom);
  try {
    for (let step = resumedFrom + 1; step <= cfg.steps; step++) state = trainStep(step, { model, stream, opt, names, params, val, cfg, schedule, log, state });
  } finally {
    log.close();
  }
  return {
    steps: cfg.steps, resumedFrom, valLossBefore, valLossAfter: state.valLoss ?? meanLoss(model, val),
    trainableParams: params.reduce((n, p) => n + p.size, 0), optimizerStateBytes: opt.stateBytes(),
  };
}
