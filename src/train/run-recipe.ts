/**
 * A recipe run end to end (`wct-train RECIPE`), for every method:
 *  - wct:   the packed base (the recipe's packed directory, or `<output>/base` quantized on the fly and
 *           reused on a resume), its weak columns, sparse outliers' values or both trained (train.trainable,
 *           src/train/wct.ts), `<output>/weak_deltas.safetensors`;
 *  - qlora: LoRA adapters over the same packed base, `<output>/adapter/` (PEFT files);
 *  - lora:  LoRA adapters over the full-precision base, `<output>/adapter/`.
 * Then the artifact is loaded over the base from disk as a user would, its validation loss checked, the
 * final perplexities measured (and the base's before training, and the full-precision model's when the base
 * was quantized from it), the eval.tasks zero-shot tasks scored on the base before training and on the reloaded
 * model after it (their files are read and checked at the start), and `<output>/summary.json` written. Each step
 * is a phase (src/util/phases.ts).
 * The output directory is claimed first (src/io/output-dir.ts: refusals, marker, lock, dead temporaries);
 * a run whose summary.json exists for the same recipe is already complete: its stored summary is returned
 * and nothing is written.
 */
import type { GpuContext } from '../gpu/array.js';
import { withDevice } from '../gpu/with-device.js';
import fs from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { setMatmulPrecision } from '../autograd/index.js';
import { evaluateData } from '../eval/evaluate-data.js';
import type { TaskResult } from '../eval/zeroshot/evaluate-task.js';
import { defaultTaskDir, evaluateTasks, resolveTasks, type TaskFile } from '../eval/zeroshot/run-tasks.js';
import { TASKS } from '../eval/zeroshot/tasks.js';
import { readJsonObject } from '../io/json-file.js';
import { checkReplaceable, claimOutputDir } from '../io/output-dir.js';
import { isPackedCheckpoint, readQuantConfig } from '../io/packed-checkpoint.js';
import { loadTokenizer, type TextTokenizer } from '../models/tokenizer.js';
import { writeAdapter } from '../io/peft-adapter.js';
import { applyLora, loadAdapter, loraParameters, type LoraConfig } from '../models/lora.js';
import type { CausalLM } from '../models/model.js';
import { checkpointSha256, writeWeakDeltas } from '../io/weak-deltas.js';
import { loadModel } from '../models/load.js';
import { applyWeakDeltas, weakColumnsOf } from '../models/weak-deltas.js';
import { OptionError } from '../errors.js';
import { methodNames, quantMethod } from '../quant/methods.js';
import { quantizeCheckpoint } from '../quant/quantize-checkpoint.js';
import { toQuantizeOptions } from '../recipe/quantize-options.js';
import { checkRecipeModel } from '../recipe/check-model.js';
import type { LoadedRecipe } from '../recipe/load.js';
import type { Recipe, TrainableSet } from '../recipe/schema.js';
import { dataSetName } from '../util/data-set-name.js';
import type { PhaseProgress, Phases } from '../util/phases.js';
import { logZeroShot, RunLog, type TrainProgress } from './run-log.js';
import { meanLoss, train, validationSet, type Trainable, type TrainConfig, type TrainResult } from './trainer.js';
import { trainableSetOf, trainsOutliers, wctParameters } from './wct.js';

export interface RunSummary {
  method: Recipe['method'];
  /** What method wct trained (train.trainable); absent for lora / qlora and in the summaries of earlier versions. */
  trainable?: TrainableSet;
  recipe: string;
  base: string;
  /** Decoder-linear average bits of the base (32 for a full-precision base). */
  baseBits: number;
  /** The exported deltas file or adapter directory, and its size on disk. */
  artifact: { path: string; bytes: number };
  /** `name`: the training data's short name (src/util/data-set-name.ts), which the reports print. */
  data: { name: string; train: number; validation: number; truncated: number; dropped: number };
  train: TrainResult;
  /** Validation loss with the artifact reloaded over the base from disk. */
  valLossReloaded: number;
  /** Perplexity on each eval.final text before and after training. */
  pplBefore: Record<string, number>;
  ppl: Record<string, number>;
  /**
   * The same for the full-precision model the base was quantized from (model.path when the recipe quantizes it;
   * the base itself for lora); {} when the base is a packed checkpoint given as is, whose source is unknown.
   */
  pplFullPrecision: Record<string, number>;
  /**
   * eval.tasks, scored on the base before training and on the tuned model (reloaded) after it; absent when the
   * recipe names no tasks (and in the summaries of earlier versions).
   */
  zeroShot?: ZeroShotSummary;
  peakRssMiB: number;
  seconds: number;
}

/** One task's figures as summary.json keeps them (TaskResult without its name). */
export type TaskScores = Omit<TaskResult, 'task'>;

export interface ZeroShotSummary {
  /** eval.tasks_bos: the requests were encoded with the tokenizer's BOS. */
  bos: boolean;
  /** eval.tasks_limit: the first documents of each task; null for all. */
  limit: number | null;
  /** Each task's file. */
  files: Record<string, string>;
  /** By task name, in the recipe's order. */
  before: Record<string, TaskScores>;
  after: Record<string, TaskScores>;
}

export interface RunHooks {
  /** The phases shown to the user: quantization, evaluations, training, validation. */
  phases?: Phases;
  /** One-line notes for the user (stderr). */
  note?: (line: string) => void;
}

/**
 * The packed base: the recipe's packed directory, or `<output>/base` quantized now (or on an earlier run), with its
 * calibration forwards on the recipe's device (`gpu`; null: the CPU).
 */
async function packedBase(r: Recipe, hooks: RunHooks, gpu: GpuContext | null): Promise<string> {
  if (isPackedCheckpoint(r.model.path)) return r.model.path;
  const q = r.model.quantize;
  if (q === undefined)
    throw new OptionError('model.quantize', `missing: model.path ${r.model.path} is a full-precision checkpoint`);
  const base = path.join(r.output.dir, 'base');
  if (isPackedCheckpoint(base)) return base;
  checkReplaceable(base, base, { option: 'output.dir', force: true });
  hooks.note?.(`quantizing ${r.model.path} (${q.method}, ${q.wbits}-bit) into ${base}`);
  try {
    await quantizeCheckpoint(r.model.path, base, toQuantizeOptions(q), {
      force: true,
      writtenBy: 'wct-train',
      phases: hooks.phases,
      gpu,
    });
  } catch (e) {
    if (e instanceof OptionError && e.option === 'device') throw e; // the recipe's own key
    if (e instanceof OptionError) throw new OptionError(`model.quantize.${e.option}`, e.problem); // the recipe's key
    throw e;
  }
  return base;
}

/** Optimizer steps: train.steps, or epochs over the training examples in steps of micro_batch x grad_accum. */
function totalSteps(r: Recipe, data: Dataset): number {
  if (r.train.steps !== undefined) return r.train.steps;
  return Math.max(
    1,
    Math.ceil(((r.train.epochs ?? 1) * data.train.length) / (r.train.micro_batch * r.train.grad_accum)),
  );
}

function trainConfig(loaded: LoadedRecipe, data: Dataset, padId: number): TrainConfig {
  const r = loaded.recipe;
  const steps = totalSteps(r, data);
  const s = r.train.schedule;
  return {
    steps,
    microBatch: r.train.micro_batch,
    gradAccum: r.train.grad_accum,
    lr: r.train.optimizer.lr,
    betas: r.train.optimizer.betas,
    eps: r.train.optimizer.eps,
    weightDecay: r.train.optimizer.weight_decay,
    schedule: s.kind,
    warmupSteps: s.warmup_steps ?? Math.round((s.warmup_ratio ?? 0.03) * steps),
    maxGradNorm: r.train.max_grad_norm > 0 ? r.train.max_grad_norm : Infinity,
    seed: r.train.seed,
    groupByLength: r.data.group_by_length,
    gradientCheckpointing: r.train.gradient_checkpointing,
    padId,
    logEvery: r.logging.every,
    evalEvery: r.eval.every,
    valBatches: r.eval.val_batches ?? 0,
    outputDir: r.output.dir,
    saveEvery: r.output.save_every,
    keep: r.output.keep,
    recipeHash: loaded.hash,
  };
}

/** What each method trains on which base, how it exports, and how the export loads back. */
interface MethodRun {
  base: string;
  model: CausalLM;
  trainable: Trainable;
  /** Writes the artifact; returns its path. */
  save(step: number): string;
  /** A fresh model from the base on disk with the artifact loaded over it. */
  reload(artifact: string): CausalLM;
}

/** What outlives the trained model: its base and reload, the artifact written, and what was measured before. */
interface Trained extends Pick<MethodRun, 'base' | 'reload'> {
  artifact: string;
  tokenizer: TextTokenizer;
  data: Dataset;
  cfg: TrainConfig;
  result: TrainResult;
  pplBefore: Record<string, number>;
  pplFullPrecision: Record<string, number>;
  tasksBefore: Record<string, TaskScores>;
}

function loraConfig(r: Recipe): LoraConfig {
  const l = r.lora!;
  return { rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: l.targets };
}

async function methodRun(loaded: LoadedRecipe, hooks: RunHooks, gpu: GpuContext | null): Promise<MethodRun> {
  const r = loaded.recipe;
  if (r.method === 'wct') {
    const base = await packedBase(r, hooks, gpu);
    const model = loadModel(base);
    const set = trainableSetOf(r);
    return {
      base,
      model,
      trainable: wctParameters(model, set),
      save: (step) => {
        const file = path.join(r.output.dir, 'weak_deltas.safetensors');
        writeWeakDeltas(file, weakColumnsOf(model), {
          baseSha256: checkpointSha256(base),
          recipeHash: loaded.hash,
          step,
          trainable: set,
        });
        return file;
      },
      reload: reloadWithDeltas.bind(null, base),
    };
  }
  if (r.method === 'lora' && isPackedCheckpoint(r.model.path)) {
    throw new OptionError(
      'model.path',
      `${r.model.path} is a packed checkpoint: method lora trains over a full-precision base (use qlora for a packed one)`,
    );
  }
  const base = r.method === 'qlora' ? await packedBase(r, hooks, gpu) : r.model.path;
  const model = loadModel(base);
  const layers = applyLora(model, loraConfig(r), r.train.seed);
  return {
    base,
    model,
    trainable: loraParameters(layers),
    save: () => {
      const dir = path.join(r.output.dir, 'adapter');
      writeAdapter(dir, layers, loraConfig(r), base);
      return dir;
    },
    reload: reloadWithAdapter.bind(null, base),
  };
}

// The reloads are bound module functions, not closures of methodRun: a closure there would share its scope with
// `save`'s and keep the trained model alive while the reloaded one is read.
function reloadWithDeltas(base: string, file: string): CausalLM {
  const m = loadModel(base);
  applyWeakDeltas(m, file, base);
  return m;
}

function reloadWithAdapter(base: string, dir: string): CausalLM {
  const m = loadModel(base);
  loadAdapter(m, dir);
  return m;
}

/** Bytes of a file, or of every file under a directory. */
function diskBytes(p: string): number {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((n, f) => n + diskBytes(path.join(p, f)), 0);
}

/** Perplexity on every eval.final text, one phase each, labelled with the data set and which model (`what`). */
async function finalPerplexities(
  model: CausalLM,
  tokenizer: TextTokenizer,
  r: Recipe,
  what: string,
  hooks: RunHooks,
): Promise<Record<string, number>> {
  const ppl: Record<string, number> = {};
  for (const d of r.eval.final) {
    const phase = hooks.phases?.start(`evaluation ${dataSetName(d)} (${what})`);
    ppl[d] = (await evaluateData(model, tokenizer, d, { seqlen: r.eval.seqlen, phase })).ppl;
  }
  return ppl;
}

/**
 * The full-precision model's perplexities beside the quantized base's: model.path itself when the recipe quantizes
 * it (wct, qlora); the base's own figures for lora, whose base is full precision; else unknown ({}, with a note).
 */
async function fullPrecisionPerplexities(
  r: Recipe,
  base: string,
  pplBefore: Record<string, number>,
  hooks: RunHooks,
  ctx: GpuContext | null,
): Promise<Record<string, number>> {
  if (r.eval.final.length === 0) return {};
  if (!isPackedCheckpoint(base)) return pplBefore;
  if (isPackedCheckpoint(r.model.path)) {
    hooks.note?.(
      `full-precision perplexity not measured: ${base} is a packed checkpoint that does not name its source`,
    );
    return {};
  }
  const model = loadModel(r.model.path);
  await model.toDevice(ctx);
  const ppl = await finalPerplexities(model, loadTokenizer(r.model.path), r, 'full precision', hooks);
  await model.toDevice(null);
  return ppl;
}

/** Training as a phase: every step with its loss and the running mean, validation passes and checkpoint saves. */
function trainPhase(phase: PhaseProgress | undefined): { onProgress: (p: TrainProgress) => void; end(): void } {
  let last: TrainProgress | null = null;
  let first: number | null = null;
  return {
    onProgress: (p) => {
      last = p;
      first ??= p.done;
      const loss = p.loss === null ? '' : `loss ${p.loss.toFixed(4)}, mean ${p.meanLoss!.toFixed(4)}`;
      const doing = p.activity === 'validation' ? 'validation' : p.activity === 'checkpoint' ? 'saving checkpoint' : '';
      phase?.update(p.done, p.total, [loss, doing].filter((x) => x !== '').join(' | '));
    },
    end: () => {
      const ran = last === null ? 0 : last.done - (first ?? 0);
      const mean = last?.meanLoss ?? null;
      phase?.end(`${ran} steps`, mean === null ? undefined : `mean loss ${mean.toFixed(4)}`);
    },
  };
}

/**
 * eval.tasks as files: NAME=PATH (the loader made PATH absolute against the recipe file that names it), NAME its
 * shipped file under the task directory (../shared/data/tasks, or $WCT_DATA_DIR/tasks).
 */
function recipeTasks(loaded: LoadedRecipe): TaskFile[] {
  return resolveTasks(loaded.recipe.eval.tasks ?? [], defaultTaskDir(), 'eval.tasks');
}

/** The files a recipe reads: its output directory must neither hold nor be inside any of them. */
function recipeInputs(r: Recipe, tasks: readonly TaskFile[]): string[] {
  const q = r.model.quantize;
  return [
    r.model.path,
    r.data.path,
    ...(q === undefined ? [] : [q.calib, q.calib_tokens ?? '']),
    ...r.eval.final,
    ...tasks.map((t) => t.file),
  ];
}

/** The zero-shot tasks on `model`, one phase each labelled with which model (`what`); frozen parameters meanwhile. */
async function zeroShot(
  model: CausalLM,
  tokenizer: TextTokenizer,
  r: Recipe,
  tasks: readonly TaskFile[],
  what: string,
  hooks: RunHooks,
  trainable: Trainable | null = null,
): Promise<Record<string, TaskScores>> {
  if (tasks.length === 0) return {};
  const params = trainable?.params ?? [];
  const flags = params.map((t) => t.requiresGrad);
  for (const t of params) t.requiresGrad = false;
  try {
    const phases = hooks.phases;
    const results = await evaluateTasks(model, tokenizer, tasks, {
      bos: r.eval.tasks_bos ?? false,
      limit: r.eval.tasks_limit,
      phase: phases === undefined ? undefined : (label) => phases.start(`${label.replace(/ \(/, ` (${what}, `)}`),
    });
    return Object.fromEntries(results.map(({ task, ...scores }) => [task, scores]));
  } finally {
    params.forEach((t, i) => {
      t.requiresGrad = flags[i];
    });
  }
}

/** The stored summary of a finished run of this recipe in its output directory, or null. */
function completedRun(loaded: LoadedRecipe): RunSummary | null {
  const dir = loaded.recipe.output.dir;
  const summary = path.join(dir, 'summary.json');
  const recipe = path.join(dir, 'recipe.json');
  if (!fs.existsSync(summary) || !fs.existsSync(recipe) || readJsonObject(recipe).hash !== loaded.hash) return null;
  return readJsonObject(summary) as unknown as RunSummary;
}

/**
 * train.trainable against the method and, when the base is quantized by the run, its quantization method (before
 * any quantization: a packed base given as is is checked when its layers are, src/train/wct.ts).
 */
function checkTrainable(loaded: LoadedRecipe): void {
  const r = loaded.recipe;
  const set = r.train.trainable;
  if (set === undefined) return;
  const at = ['train', 'trainable'];
  if (r.method !== 'wct') throw loaded.fieldError(at, `applies to method wct only, not ${r.method}`);
  const q = r.model.quantize;
  if (q === undefined || isPackedCheckpoint(r.model.path)) return;
  if (trainsOutliers(set) && !quantMethod(q.method).outliers) {
    const keeping = methodNames().filter((m) => quantMethod(m).outliers);
    throw loaded.fieldError(
      at,
      `${set}: model.quantize.method ${q.method} keeps no outliers (use ${keeping.join(' or ')}, or train weak_columns)`,
    );
  }
  if (set === 'both' && !quantMethod(q.method).weakColumns)
    throw loaded.fieldError(at, `both: model.quantize.method ${q.method} keeps no weak columns (train outliers)`);
}

/** Runs the recipe in its claimed output directory, or returns the stored summary of its finished run. */
export async function runRecipe(loaded: LoadedRecipe, hooks: RunHooks = {}): Promise<RunSummary> {
  const r = loaded.recipe;
  const out = claimOutputDir(r.output.dir, {
    option: 'output.dir',
    command: 'wct-train',
    inputs: recipeInputs(r, recipeTasks(loaded)),
    mode: 'update',
    note: hooks.note ?? (() => undefined),
  });
  try {
    const done = completedRun(loaded);
    if (done === null)
      return await withDevice(
        r.device,
        (line) => hooks.note?.(line),
        (ctx) => trainRecipe(loaded, hooks, ctx),
      );
    hooks.note?.(
      `already complete: ${path.join(r.output.dir, 'summary.json')} (its stored summary follows; use another output.dir to train again)`,
    );
    return done;
  } finally {
    out.release();
  }
}

/**
 * The method's model loaded (and its base quantized when the recipe asks), measured before training, trained and
 * its artifact written. The model lives only in here, so that it is garbage before the artifact is reloaded.
 */
async function trainAndSave(
  loaded: LoadedRecipe,
  hooks: RunHooks,
  ctx: GpuContext | null,
  tasks: readonly TaskFile[],
): Promise<Trained> {
  const r = loaded.recipe;
  const run = await methodRun(loaded, hooks, ctx);
  const tokenizer = loadTokenizer(run.base);
  const data = loadDataset(
    {
      path: r.data.path,
      format: r.data.format,
      template: r.data.template,
      maxLength: r.data.max_length,
      validation: r.data.validation as { fraction: number } | { count: number },
      shuffleSeed: r.data.shuffle_seed,
      packing: r.data.packing,
    },
    tokenizer,
  );
  if (data.truncated > 0)
    hooks.note?.(`${data.truncated} examples longer than data.max_length ${r.data.max_length} were truncated`);
  if (data.dropped > 0)
    hooks.note?.(`${data.dropped} examples had no response tokens left after truncation and were dropped`);
  const cfg = trainConfig(loaded, data, tokenizer.eosTokenId ?? 0);
  run.trainable.setTraining(false);
  const baseKind = isPackedCheckpoint(run.base) ? 'quantized base' : 'full-precision base';
  // Marked trainable before the move: the device keeps frozen weak columns in f16 and trainable ones in f32, and a
  // resumed run writes its checkpoint's values into them before any forward.
  for (const p of run.trainable.params) p.requiresGrad = true;
  await run.model.toDevice(ctx);
  const pplBefore = await finalPerplexities(run.model, tokenizer, r, baseKind, hooks);
  const pplFullPrecision = await fullPrecisionPerplexities(r, run.base, pplBefore, hooks, ctx);
  const tasksBefore = await zeroShot(run.model, tokenizer, r, tasks, baseKind, hooks, run.trainable);
  // train.bf16: the dense products (lm_head, full-precision linears) in bf16 with fp32 accumulation
  const previous = setMatmulPrecision(r.train.bf16 ? 'bf16' : 'fp32');
  let result: TrainResult;
  const trainProgress = trainPhase(hooks.phases?.start('train'));
  try {
    const tensorboard = r.logging.tensorboard;
    const { onProgress } = trainProgress;
    result = await train(
      run.model,
      run.trainable,
      data,
      cfg,
      (resumeFromStep) => new RunLog({ dir: r.output.dir, tensorboardDir: tensorboard, resumeFromStep, onProgress }),
    );
  } finally {
    setMatmulPrecision(previous);
  }
  trainProgress.end();
  await run.model.toDevice(null);
  const artifact = run.save(result.steps);
  const { base, reload } = run;
  return { base, reload, artifact, tokenizer, data, cfg, result, pplBefore, pplFullPrecision, tasksBefore };
}

/** Trains on the device of `ctx` (null: the CPU): the model moves there, and back to the host to be exported. */
async function trainRecipe(loaded: LoadedRecipe, hooks: RunHooks, ctx: GpuContext | null): Promise<RunSummary> {
  const started = performance.now();
  const r = loaded.recipe;
  checkRecipeModel(loaded);
  checkTrainable(loaded);
  // the task files are read (and checked) now, not after quantization and training
  const tasks = recipeTasks(loaded);
  for (const t of tasks) TASKS[t.name].load(t.file, r.eval.tasks_limit);
  fs.writeFileSync(
    path.join(r.output.dir, 'recipe.json'),
    `${JSON.stringify({ file: loaded.file, hash: loaded.hash, recipe: loaded.raw }, null, 2)}\n`,
  );
  const { base, reload, artifact, tokenizer, data, cfg, result, pplBefore, pplFullPrecision, tasksBefore } =
    await trainAndSave(loaded, hooks, ctx, tasks);
  const reloaded = reload(artifact); // the trained model is unreachable now: one model in memory at a time
  await reloaded.toDevice(ctx);
  const validation = hooks.phases?.start(`validation ${dataSetName(r.data.path)} (exported artifact reloaded)`);
  validation?.update(0, 0, `${data.validation.length} examples`);
  const valBatches = validationSet(data, cfg);
  const valLossReloaded = await meanLoss(reloaded, valBatches);
  validation?.end(`${valBatches.length} batches`, `loss ${valLossReloaded.toFixed(4)}`);
  const ppl = await finalPerplexities(reloaded, tokenizer, r, 'tuned', hooks);
  const tasksAfter = await zeroShot(reloaded, tokenizer, r, tasks, 'tuned', hooks);
  await reloaded.toDevice(null);
  const zeroShotSummary: ZeroShotSummary | null =
    tasks.length === 0
      ? null
      : {
          bos: r.eval.tasks_bos ?? false,
          limit: r.eval.tasks_limit ?? null,
          files: Object.fromEntries(tasks.map((t) => [t.name, t.file])),
          before: tasksBefore,
          after: tasksAfter,
        };
  if (zeroShotSummary !== null)
    logZeroShot(r.output.dir, r.logging.tensorboard, [
      { step: 0, model: 'base', tasks: tasksBefore },
      { step: result.steps, model: 'tuned', tasks: tasksAfter },
    ]);
  const summary: RunSummary = {
    method: r.method,
    ...(r.method === 'wct' ? { trainable: trainableSetOf(r) } : {}),
    recipe: loaded.file,
    base,
    baseBits: isPackedCheckpoint(base) ? readQuantConfig(base).avg_bits.decoder_linear : 32,
    artifact: { path: artifact, bytes: diskBytes(artifact) },
    data: {
      name: dataSetName(r.data.path),
      train: data.train.length,
      validation: data.validation.length,
      truncated: data.truncated,
      dropped: data.dropped,
    },
    train: result,
    valLossReloaded,
    pplBefore,
    ppl,
    pplFullPrecision,
    ...(zeroShotSummary === null ? {} : { zeroShot: zeroShotSummary }),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    seconds: (performance.now() - started) / 1000,
  };
  fs.writeFileSync(path.join(r.output.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
