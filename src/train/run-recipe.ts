/**
 * A recipe run end to end (`wct-train RECIPE`), for every method:
 *  - wct:   the packed base (the recipe's packed directory, or `<output>/base` quantized on the fly and
 *           reused on a resume), its weak columns trained, `<output>/weak_deltas.safetensors`;
 *  - qlora: LoRA adapters over the same packed base, `<output>/adapter/` (PEFT files);
 *  - lora:  LoRA adapters over the full-precision base, `<output>/adapter/`.
 * Then the artifact is loaded over the base from disk as a user would, its validation loss checked, the
 * final perplexities measured (and the base's before training), and `<output>/summary.json` written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { setMatmulPrecision } from '../autograd/index.js';
import { evaluateData } from '../eval/evaluate-data.js';
import { isPackedCheckpoint, readQuantConfig } from '../io/packed-checkpoint.js';
import { loadTokenizer, type TextTokenizer } from '../models/tokenizer.js';
import { writeAdapter } from '../io/peft-adapter.js';
import { applyLora, loadAdapter, loraParameters, type LoraConfig } from '../models/lora.js';
import type { CausalLM } from '../models/model.js';
import { checkpointSha256, writeWeakDeltas } from '../io/weak-deltas.js';
import { loadModel } from '../models/load.js';
import { applyWeakDeltas, weakColumnsOf } from '../models/weak-deltas.js';
import { OptionError } from '../errors.js';
import type { QuantProgress } from '../quant/pipeline.js';
import { quantizeCheckpoint } from '../quant/quantize-checkpoint.js';
import { toQuantizeOptions } from '../recipe/quantize-options.js';
import { checkRecipeModel } from '../recipe/check-model.js';
import type { LoadedRecipe } from '../recipe/load.js';
import type { Recipe } from '../recipe/schema.js';
import { RunLog, type TrainProgress } from './run-log.js';
import { meanLoss, train, validationSet, type Trainable, type TrainConfig, type TrainResult } from './trainer.js';
import { weakParameters } from './wct.js';

export interface RunSummary {
  method: Recipe['method'];
  recipe: string;
  base: string;
  /** Decoder-linear average bits of the base (32 for a full-precision base). */
  baseBits: number;
  /** The exported deltas file or adapter directory, and its size on disk. */
  artifact: { path: string; bytes: number };
  data: { train: number; validation: number; truncated: number; dropped: number };
  train: TrainResult;
  /** Validation loss with the artifact reloaded over the base from disk. */
  valLossReloaded: number;
  /** Perplexity on each eval.final text before and after training. */
  pplBefore: Record<string, number>;
  ppl: Record<string, number>;
  peakRssMiB: number;
  seconds: number;
}

export interface RunHooks {
  /** Progress of the on-the-fly quantization. */
  onQuantize?: (p: QuantProgress) => void;
  /** Progress of training. */
  onTrain?: (p: TrainProgress) => void;
  /** One-line notes for the user (stderr). */
  note?: (line: string) => void;
}

/** The packed base: the recipe's packed directory, or `<output>/base` quantized now (or on an earlier run). */
function packedBase(r: Recipe, hooks: RunHooks): string {
  if (isPackedCheckpoint(r.model.path)) return r.model.path;
  const q = r.model.quantize;
  if (q === undefined)
    throw new OptionError('model.quantize', `missing: model.path ${r.model.path} is a full-precision checkpoint`);
  const base = path.join(r.output.dir, 'base');
  if (isPackedCheckpoint(base)) return base;
  hooks.note?.(`quantizing ${r.model.path} (${q.method}, ${q.wbits}-bit) into ${base}`);
  try {
    quantizeCheckpoint(r.model.path, base, toQuantizeOptions(q), { force: true, onProgress: hooks.onQuantize });
  } catch (e) {
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

function loraConfig(r: Recipe): LoraConfig {
  const l = r.lora!;
  return { rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: l.targets };
}

function methodRun(loaded: LoadedRecipe, hooks: RunHooks): MethodRun {
  const r = loaded.recipe;
  if (r.method === 'wct') {
    const base = packedBase(r, hooks);
    const model = loadModel(base);
    return {
      base,
      model,
      trainable: weakParameters(model),
      save: (step) => {
        const file = path.join(r.output.dir, 'weak_deltas.safetensors');
        writeWeakDeltas(file, weakColumnsOf(model), {
          baseSha256: checkpointSha256(base),
          recipeHash: loaded.hash,
          step,
        });
        return file;
      },
      reload: (file) => {
        const m = loadModel(base);
        applyWeakDeltas(m, file, base);
        return m;
      },
    };
  }
  if (r.method === 'lora' && isPackedCheckpoint(r.model.path)) {
    throw new OptionError(
      'model.path',
      `${r.model.path} is a packed checkpoint: method lora trains over a full-precision base (use qlora for a packed one)`,
    );
  }
  const base = r.method === 'qlora' ? packedBase(r, hooks) : r.model.path;
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
    reload: (dir) => {
      const m = loadModel(base);
      loadAdapter(m, dir);
      return m;
    },
  };
}

/** Bytes of a file, or of every file under a directory. */
function diskBytes(p: string): number {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((n, f) => n + diskBytes(path.join(p, f)), 0);
}

function finalPerplexities(model: CausalLM, tokenizer: TextTokenizer, r: Recipe): Record<string, number> {
  return Object.fromEntries(
    r.eval.final.map((d) => [d, evaluateData(model, tokenizer, d, { seqlen: r.eval.seqlen }).ppl]),
  );
}

export function runRecipe(loaded: LoadedRecipe, hooks: RunHooks = {}): RunSummary {
  const started = performance.now();
  const r = loaded.recipe;
  checkRecipeModel(loaded);
  fs.mkdirSync(r.output.dir, { recursive: true });
  fs.writeFileSync(
    path.join(r.output.dir, 'recipe.json'),
    `${JSON.stringify({ file: loaded.file, hash: loaded.hash, recipe: loaded.raw }, null, 2)}\n`,
  );
  const run = methodRun(loaded, hooks);
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
  const pplBefore = finalPerplexities(run.model, tokenizer, r);
  // train.bf16: the dense products (lm_head, full-precision linears) in bf16 with fp32 accumulation
  const previous = setMatmulPrecision(r.train.bf16 ? 'bf16' : 'fp32');
  let result: TrainResult;
  try {
    const tensorboard = r.logging.tensorboard;
    result = train(
      run.model,
      run.trainable,
      data,
      cfg,
      (resumeFromStep) =>
        new RunLog({ dir: r.output.dir, tensorboardDir: tensorboard, resumeFromStep, onProgress: hooks.onTrain }),
    );
  } finally {
    setMatmulPrecision(previous);
  }
  const artifact = run.save(result.steps);
  const reloaded = run.reload(artifact);
  const summary: RunSummary = {
    method: r.method,
    recipe: loaded.file,
    base: run.base,
    baseBits: isPackedCheckpoint(run.base) ? readQuantConfig(run.base).avg_bits.decoder_linear : 32,
    artifact: { path: artifact, bytes: diskBytes(artifact) },
    data: {
      train: data.train.length,
      validation: data.validation.length,
      truncated: data.truncated,
      dropped: data.dropped,
    },
    train: result,
    valLossReloaded: meanLoss(reloaded, validationSet(data, cfg)),
    pplBefore,
    ppl: finalPerplexities(reloaded, tokenizer, r),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    seconds: (performance.now() - started) / 1000,
  };
  fs.writeFileSync(path.join(r.output.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
