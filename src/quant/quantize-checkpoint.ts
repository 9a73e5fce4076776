/**
 * Full-precision checkpoint directory -> packed checkpoint directory: load, calibrate, run the block
 * pipeline, pack, write (atomically). Shared by `wct quantize` and `wct-train` (which quantizes its base
 * on the fly when a recipe names a full-precision model).
 */
import path from 'node:path';
import { OptionError } from '../errors.js';
import type { GpuContext } from '../gpu/array.js';
import {
  PACKED_FORMAT,
  PACKED_VERSION,
  writePackedCheckpoint,
  type PackedModelToWrite,
  type QuantConfig,
} from '../io/packed-checkpoint.js';
import { loadTokenizer } from '../models/tokenizer.js';
import { headTensorNames, resolveTensorName } from '../models/checkpoint-tensors.js';
import { loadModel } from '../models/load.js';
import type { CausalLM, ModelConfig } from '../models/model.js';
import type { PackedBits } from '../native/packed.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Phases } from '../util/phases.js';
import { concatenatedCalibration, readCalibrationTokens, sampleCalibration, type Calibration } from './calibration.js';
import { quantMethod } from './methods.js';
import type { QuantizeOptions } from './options.js';
import { toPacked } from './pack.js';
import { quantizeModel, quantStatus, type QuantizeModelResult, type QuantProgress } from './pipeline.js';
import type { QuantizedColumns } from './quantized.js';
import { rtn } from './rtn.js';
import { weakCounts } from './weak-count.js';

export interface QuantizeCheckpointResult {
  config: QuantConfig;
  /** Weak columns per linear kind (name relative to the block prefix). */
  nOut: Map<string, number>;
  seconds: number;
}

export interface QuantizeCheckpointRun {
  /** Replace an existing output directory. */
  force: boolean;
  /** The command writing it, recorded in its marker (src/io/output-dir.ts). */
  writtenBy?: string;
  onProgress?: (p: QuantProgress) => void;
  /** The phases shown to the user: calibration sampling, then quantize (block i/n and stage). */
  phases?: Phases;
  /** The GPU the calibration forwards and Hessians run on (the quantizer's sweep stays on the host); null/absent: the CPU. */
  gpu?: GpuContext | null;
}

/**
 * Checks the weak-column counts against every quantized linear's in_features. Any in_features and any group
 * size are packed (src/native/packed.ts: rows padded to whole blocks, the last group shorter when the group
 * size does not divide in_features, as GPTQ's fasterquant forms them).
 */
function checkLayers(model: CausalLM, nOut: Map<string, number>, o: QuantizeOptions): void {
  const prefix = model.blockPrefix(0);
  for (const [short, n] of nOut) {
    const cols = model.linears().get(`${prefix}.${short}`)!.inFeatures;
    if (n >= cols / 2) {
      const [key, what] =
        o.budget !== null && 'targetBit' in o.budget
          ? ['target_bit', `target bit ${o.budget.targetBit}`]
          : ['target_rank', `target rank ${o.budget !== null && 'targetRank' in o.budget ? o.budget.targetRank : 0}`];
      throw new OptionError(
        key,
        `${what} is too high: ${n} weak columns for ${short}, which has ${cols} input columns (at most ${Math.ceil(cols / 2) - 1})`,
      );
    }
  }
}

/** The papers' average: low-bit columns plus 16-bit weak columns (and 16-bit outliers: GWQ's b + 16ρ), over the
 * decoder linears' weights. */
export function decoderLinearBits(layers: Iterable<QuantizedColumns>): number {
  let bits = 0;
  let weights = 0;
  for (const q of layers) {
    bits += q.rows * (q.nQuant * q.bits + (q.cols - q.nQuant) * 16) + 16 * outlierCount(q);
    weights += q.rows * q.cols;
  }
  return bits / weights;
}

const outlierCount = (q: QuantizedColumns): number => q.outliers?.index.length ?? 0;

/** Stored bits per decoder-linear weight: b per element (weak and outlier positions hold a code too), 32 per
 * (row, group) for the fp16 scale and zero, 16 per weak element, 48 per outlier (a 32-bit column index and an fp16
 * value). */
export function storedBits(layers: Iterable<QuantizedColumns>): number {
  let [bits, weights] = [0, 0];
  for (const q of layers) {
    bits += q.rows * (q.cols * q.bits + 32 * q.nGroups + 16 * (q.cols - q.nQuant)) + 48 * outlierCount(q);
    weights += q.rows * q.cols;
  }
  return bits / weights;
}

/** What quantization_config.json records of the gradient pass (none: undefined). */
function gradientsRecord(
  o: QuantizeOptions,
  results: Map<string, QuantizedColumns>,
): PackedModelToWrite['quantConfig']['gradients'] {
  if (quantMethod(o.method).gradients?.(o) == null) return undefined;
  if (o.method !== 'gwq') return { windows: o.gradSamples, sensitivity: 'fisher' };
  const outliers = [...results.values()].reduce((n, q) => n + outlierCount(q), 0);
  const { score, quantizer, outlierRatio } = o.gwq;
  return {
    windows: o.gradSamples,
    gwq: {
      score,
      quantizer,
      outlier_ratio: outlierRatio,
      outliers,
      papers_bits: o.bits + 16 * outlierRatio,
      stored_bits: storedBits(results.values()),
    },
  };
}

/** The token embedding and an untied lm_head, round-to-nearest per row at `bits` (no weak columns), by module name. */
function quantizeEmbeddings(
  weights: ReadonlyMap<string, Tensor>,
  config: ModelConfig,
  bits: number,
): Map<string, QuantizedColumns> {
  const { embedding, lmHead } = headTensorNames(config);
  const tables = [embedding, ...(weights.has(lmHead) ? [lmHead] : [])];
  return new Map(
    tables.map((tensor) => {
      const w = weights.get(tensor)!;
      const [rows, cols] = w.shape;
      return [tensor.slice(0, -'.weight'.length), rtn(w.data as Float32Array, rows, cols, { bits, groupSize: 0 })];
    }),
  );
}

/** AWQ's default block length (llm-awq's seqlen), capped at the model's limit. */
const AWQ_SEQLEN = 512;

/**
 * The calibration windows the options name, or null for a method that needs none: random windows (Hessian
 * methods), or AWQ's concatenated documents (statistic 'activations'; a tokens file then gives all its blocks).
 */
function calibrationFor(
  modelDir: string,
  config: ModelConfig,
  o: QuantizeOptions,
  phases?: Phases,
): Calibration | null {
  const method = quantMethod(o.method);
  const statistic = method.statistic(o);
  const gradients = method.gradients?.(o) ?? null;
  if (statistic === 'none' && gradients === null) return null;
  const blocks = statistic === 'activations';
  const seqlen = o.calibration.seqlen ?? (blocks ? Math.min(AWQ_SEQLEN, config.maxPositions) : config.maxPositions);
  if (!(Number.isInteger(seqlen) && seqlen >= 2 && seqlen <= config.maxPositions)) {
    throw new OptionError('seqlen', `calibration seqlen ${seqlen}: expected an integer in [2, ${config.maxPositions}]`);
  }
  // a gradient pass alone (gwq with rtn) reads only its S windows
  const nsamples =
    statistic === 'none' ? gradients!.windows : Math.max(o.calibration.nsamples, gradients?.windows ?? 0);
  const c = { nsamples, seqlen, seed: o.calibration.seed };
  if (o.calibration.tokensFile !== null)
    return readCalibrationTokens(
      o.calibration.tokensFile,
      { ...c, nsamples: blocks ? null : c.nsamples },
      config.vocabSize,
    );
  const phase = phases?.start('calibration sampling');
  const what = blocks ? 'documents' : 'windows';
  const status = `${what} from ${o.calibration.data}${blocks ? '' : ' (each document tokenized on first draw)'}`;
  phase?.update(0, c.nsamples, status);
  const sample = blocks ? concatenatedCalibration : sampleCalibration;
  const calibration = sample(o.calibration.data, loadTokenizer(modelDir), c, (d, t) => phase?.update(d, t, status));
  phase?.end(
    `${calibration.windows.length} ${blocks ? 'blocks' : 'windows'} of ${seqlen} tokens from ${o.calibration.data}${blocks ? ` (${c.nsamples} documents)` : ''}`,
  );
  return calibration;
}

/** quantization_config.json as written, less the file's measured bits. */
function quantConfigOf(
  o: QuantizeOptions,
  calibration: Calibration | null,
  { layers: results, transforms }: QuantizeModelResult,
  embeddings: Map<string, QuantizedColumns>,
): PackedModelToWrite['quantConfig'] {
  return {
    format: PACKED_FORMAT,
    version: PACKED_VERSION,
    method: o.method,
    bits: o.bits as PackedBits,
    group_size: o.groupSize,
    target_bit: o.budget !== null && 'targetBit' in o.budget ? o.budget.targetBit : null,
    target_rank: o.budget !== null && 'targetRank' in o.budget ? o.budget.targetRank : null,
    tuning: o.tuning,
    act_order: o.actOrder,
    true_sequential: o.trueSequential,
    percdamp: o.percdamp,
    calibration:
      calibration === null
        ? null
        : {
            data: calibration.source,
            nsamples: calibration.windows.length,
            seqlen: calibration.windows[0].length,
            seed: o.calibration.seed,
          },
    n_out: Object.fromEntries([...results].map(([name, q]) => [name, q.cols - q.nQuant])),
    embeddings: Object.fromEntries([...embeddings].map(([name, q]) => [name, q.bits])),
    avg_bits: { decoder_linear: decoderLinearBits(results.values()) },
    ...(o.awq.scale || o.awq.clip
      ? { awq: { scale: o.awq.scale, clip: o.awq.clip, grid: o.awq.grid, blocks: transforms } }
      : {}),
    gradients: gradientsRecord(o, results),
  };
}

/** Quantizes `modelDir` as `o` says and writes the packed checkpoint `outDir`. */
export async function quantizeCheckpoint(
  modelDir: string,
  outDir: string,
  o: QuantizeOptions,
  run: QuantizeCheckpointRun,
): Promise<QuantizeCheckpointResult> {
  const model = loadModel(modelDir);
  const config = model.config;
  const nOut = weakCounts(config, o.bits, quantMethod(o.method).weakColumns ? o.budget : null);
  checkLayers(model, nOut, o);
  const calibration = calibrationFor(modelDir, config, o, run.phases);
  const started = performance.now();
  const phase = run.phases?.start('quantize');
  const onProgress = (p: QuantProgress) => {
    run.onProgress?.(p);
    phase?.update(p.done, p.total, quantStatus(p));
  };
  const gpu = run.gpu ?? null;
  if (gpu !== null) await model.toDevice(gpu);
  const results = await quantizeModel(model, { ...o, nOut, windows: calibration?.windows ?? [], onProgress });
  if (gpu !== null) await model.toDevice(null); // the packed file is written from the host
  const seconds = (performance.now() - started) / 1000;
  phase?.end(`${model.numBlocks} blocks (${o.method}, ${o.bits}-bit)`);
  const embeddings =
    o.embedBits === null
      ? new Map<string, QuantizedColumns>()
      : quantizeEmbeddings(model.parameters(), config, o.embedBits);
  const packed = new Map([...results.layers, ...embeddings].map(([name, q]) => [name, toPacked(q)]));
  const qc = writePackedCheckpoint(
    path.resolve(outDir),
    {
      sourceDir: path.resolve(modelDir),
      weights: model.parameters(),
      storedName: resolveTensorName,
      packed,
      quantConfig: quantConfigOf(o, calibration, results, embeddings),
    },
    run.force,
    run.writtenBy,
  );
  return { config: qc, nOut, seconds };
}
