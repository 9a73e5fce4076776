/**
 * A recipe run end to end (`wct-train RECIPE`): the packed base (quantized on the fly into
 * `<output>/base` when the recipe names a full-precision model, reused on a resume), the data, Weak
 * Column Tuning with resumable checkpoints, `<output>/weak_deltas.safetensors`, the final perplexities
 * (with the deltas loaded over the base from disk, as a user would) and `<output>/summary.json`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { setMatmulPrecision } from '../autograd/index.js';
import { evaluateData } from '../eval/evaluate-data.js';
import { isPackedCheckpoint } from '../io/packed-checkpoint.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { checkpointSha256, writeWeakDeltas } from '../io/weak-deltas.js';
import { loadModel } from '../models/load.js';
import { applyWeakDeltas, weakColumnsOf } from '../models/weak-deltas.js';
import { quantizeCheckpoint } from '../quant/quantize-checkpoint.js';
import type { LoadedRecipe } from '../recipe/load.js';
import type { Recipe } from '../recipe/schema.js';
import { RunLog } from './run-log.js';
import { meanLoss, trainWeakColumns, validationSet, type TrainConfig, type TrainResult } from './wct-trainer.js';

export interface RunSummary {
  recipe: string;
  base: string;
  deltas: string;
  data: { train: number; validation: number; truncated: number; dropped: number };
  train: TrainResult;
  /** Validation loss of the deltas reloaded over the base from disk. */
  valLossReloaded: number;
  ppl: Record<string, number>;
  peakRssMiB: number;
  seconds: number;
}

export interface RunHooks {
  /** Progress of the on-the-fly quantization. */
  onQuantize?: (done: number, total: number) => void;
  /** One-line notes for the user (stderr). */
  note?: (line: string) => void;
}

/** The packed base: the recipe's packed directory, or `<output>/base` quantized now (or on an earlier run). */
function packedBase(r: Recipe, hooks: RunHooks): string {
  if (isPackedCheckpoint(r.model.path)) return r.model.path;
  const q = r.model.quantize;
  if (q === undefined) throw new RangeError(`model.path ${r.model.path} is a full-precision checkpoint: give model.quantize settings`);
  const base = path.join(r.output.dir, 'base');
  if (isPackedCheckpoint(base)) return base;
  hooks.note?.(`quantizing ${r.model.path} (${q.method}, ${q.wbits}-bit) into ${base}`);
  quantizeCheckpoint(r.model.path, base, {
    method: q.method, bits: q.wbits, targetBit: q.target_bit, targetRank: q.target_rank, groupSize: q.group_size,
    actOrder: q.act_order, trueSequential: q.true_sequential, tuning: q.tuning, calib: q.calib, calibTokens: q.calib_tokens,
    nsamples: q.nsamples, seqlen: q.seqlen, seed: q.seed, percdamp: q.percdamp, onProgress: hooks.onQuantize,
  }, true);
  return base;
}

/** Optimizer steps: train.steps, or epochs over the training examples in steps of micro_batch x grad_accum. */
function totalSteps(r: Recipe, data: Dataset): number {
  if (r.train.steps !== undefined) return r.train.steps;
  return Math.max(1, Math.ceil(((r.train.epochs ?? 1) * data.train.length) / (r.train.micro_batch * r.train.grad_accum)));
}

function trainConfig(loaded: LoadedRecipe, data: Dataset, padId: number): TrainConfig {
  const r = loaded.recipe;
  const steps = totalSteps(r, data);
  const s = r.train.schedule;
  return {
    steps, microBatch: r.train.micro_batch, gradAccum: r.train.grad_accum, lr: r.train.optimizer.lr, betas: r.train.optimizer.betas,
    eps: r.train.optimizer.eps, weightDecay: r.train.optimizer.weight_decay, schedule: s.kind,
    warmupSteps: s.warmup_steps ?? Math.round((s.warmup_ratio ?? 0.03) * steps), maxGradNorm: r.train.max_grad_norm > 0 ? r.train.max_grad_norm : Infinity,
    seed: r.train.seed, groupByLength: r.data.group_by_length, padId, logEvery: r.logging.every, evalEvery: r.eval.every, valBatches: r.eval.val_batches ?? 0,
    outputDir: r.output.dir, saveEvery: r.output.save_every, keep: r.output.keep, recipeHash: loaded.hash,
  };
}

export function runRecipe(loaded: LoadedRecipe, hooks: RunHooks = {}): RunSummary {
  const started = performance.now();
  const r = loaded.recipe;
  fs.mkdirSync(r.output.dir, { recursive: true });
  fs.writeFileSync(path.join(r.output.dir, 'recipe.json'), `${JSON.stringify({ file: loaded.file, hash: loaded.hash, recipe: loaded.raw }, null, 2)}\n`);
  const base = packedBase(r, hooks);
  const model = loadModel(base);
  const tokenizer = loadTokenizer(base);
  const data = loadDataset({
    path: r.data.path, format: r.data.format, template: r.data.template, maxLength: r.data.max_length,
    validation: r.data.validation as { fraction: number } | { count: number }, shuffleSeed: r.data.shuffle_seed, packing: r.data.packing,
  }, tokenizer);
  if (data.truncated > 0) hooks.note?.(`${data.truncated} examples longer than data.max_length ${r.data.max_length} were truncated`);
  if (data.dropped > 0) hooks.note?.(`${data.dropped} examples had no response tokens left after truncation and were dropped`);
  const padId = tokenizer.eosTokenId ?? 0;
  const cfg = trainConfig(loaded, data, padId);
  const tensorboard = r.logging.tensorboard;
  // train.bf16: the dense products (lm_head, dense linears) in bf16 with fp32 accumulation; packed products stay fp32
  const previous = setMatmulPrecision(r.train.bf16 ? 'bf16' : 'fp32');
  let train: TrainResult;
  try {
    train = trainWeakColumns(model, data, cfg, (resumeFromStep) => new RunLog({ dir: r.output.dir, tensorboardDir: tensorboard, resumeFromStep }));
  } finally {
    setMatmulPrecision(previous);
  }
  const deltas = path.join(r.output.dir, 'weak_deltas.safetensors');
  writeWeakDeltas(deltas, weakColumnsOf(model), { baseSha256: checkpointSha256(base), recipeHash: loaded.hash, step: train.steps });
  // what a user gets: the base from disk with the deltas loaded over it
  const reloaded = loadModel(base);
  applyWeakDeltas(reloaded, deltas, base);
  const valLossReloaded = meanLoss(reloaded, validationSet(data, cfg));
  const ppl: Record<string, number> = {};
  for (const d of r.eval.final) ppl[d] = evaluateData(reloaded, tokenizer, d, { seqlen: r.eval.seqlen }).ppl;
  const summary: RunSummary = {
    recipe: loaded.file, base, deltas,
    data: { train: data.train.length, validation: data.validation.length, truncated: data.truncated, dropped: data.dropped },
    train, valLossReloaded, ppl, peakRssMiB: process.resourceUsage().maxRSS / 1024, seconds: (performance.now() - started) / 1000,
  };
  fs.writeFileSync(path.join(r.output.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
