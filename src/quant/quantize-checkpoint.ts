/**
 * Full-precision checkpoint directory -> packed checkpoint directory: load, calibrate, run the block
 * pipeline, pack, write (atomically). Shared by `wct quantize` and `wct-train` (which quantizes its base
 * on the fly when a recipe names a full-precision model).
 */
import path from 'node:path';
import { tokenEmbeddingName, type ModelConfig } from '../io/hf-config.js';
import type { QuantizeRecipe } from '../recipe/schema.js';
import type { Tensor } from '../tensor/tensor.js';
import { PACKED_FORMAT, PACKED_VERSION, writePackedCheckpoint, type QuantConfig } from '../io/packed-checkpoint.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { loadModel } from '../models/load.js';
import type { LinearLayer } from '../models/linear.js';
import type { PackedBits } from '../native/packed.js';
import { readCalibrationTokens, sampleCalibration, type Calibration } from './calibration.js';
import { quantFamily } from './family.js';
import { toPacked } from './pack.js';
import { quantizeModel, type QuantMethod } from './pipeline.js';
import type { QuantizedColumns } from './quantized.js';
import type { Tuning } from './quantizer.js';
import { weakCounts, type WeakBudget } from './weak-count.js';
import { rtn } from './rtn.js';

export interface QuantizeCheckpointOptions {
  method: QuantMethod;
  bits: number;
  targetBit?: number;
  targetRank?: number;
  /** 0 = per row. */
  groupSize: number;
  actOrder: boolean;
  trueSequential: boolean;
  /** Default: mse for OWQ, minmax otherwise. */
  tuning?: Tuning;
  /** c4 | wikitext2 | a .jsonl/.txt path; ignored when calibTokens is given. */
  calib: string;
  calibTokens?: string;
  nsamples: number;
  /** Default: max_position_embeddings. */
  seqlen?: number;
  seed: number;
  percdamp: number;
  /** Also store the token embedding (and an untied lm_head) packed, per row, at these bits; default: keep them. */
  embedBits?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The options of a recipe's model.quantize section (also what `wct quantize` parses its flags into). */
export function checkpointOptions(q: QuantizeRecipe, onProgress?: (done: number, total: number) => void): QuantizeCheckpointOptions {
  return {
    method: q.method, bits: q.wbits, targetBit: q.target_bit, targetRank: q.target_rank, groupSize: q.group_size,
    actOrder: q.act_order, trueSequential: q.true_sequential, tuning: q.tuning, calib: q.calib, calibTokens: q.calib_tokens,
    nsamples: q.nsamples, seqlen: q.seqlen, seed: q.seed, percdamp: q.percdamp, embedBits: q.embed_bits, onProgress,
  };
}

export interface QuantizeCheckpointResult {
  config: QuantConfig;
  /** Weak columns per linear kind (name relative to the block prefix). */
  nOut: Map<string, number>;
  seconds: number;
}

/** Checks the group size and the weak-column counts against every quantized linear's in_features. */
function checkLayers(linears: ReadonlyMap<string, LinearLayer>, prefix: string, nOut: Map<string, number>, o: QuantizeCheckpointOptions): void {
  for (const [short, n] of nOut) {
    const cols = linears.get(`${prefix}.${short}`)!.inFeatures;
    if (o.groupSize > 0 && (cols % o.groupSize !== 0 || o.groupSize % 8 !== 0)) {
      throw new RangeError(`group size ${o.groupSize} does not divide ${short}'s in_features ${cols} (or is not a multiple of 8)`);
    }
    if (cols % 8 !== 0) throw new RangeError(`${short}: in_features ${cols} is not a multiple of 8`);
    if (n >= cols / 2) {
      const what = o.targetBit !== undefined ? `target bit ${o.targetBit}` : `target rank ${o.targetRank}`;
      throw new RangeError(`${what} is too high: ${n} weak columns for ${short}, which has ${cols} input columns (at most ${cols / 2 - 1})`);
    }
  }
}

/** The papers' average: low-bit columns plus 16-bit weak columns, over the decoder linears' weights. */
function decoderLinearBits(layers: Iterable<QuantizedColumns>): number {
  let bits = 0;
  let weights = 0;
  for (const q of layers) {
    bits += q.rows * (q.nQuant * q.bits + (q.cols - q.nQuant) * 16);
    weights += q.rows * q.cols;
  }
  return bits / weights;
}

/** The token embedding and an untied lm_head, round-to-nearest per row at `bits` (no weak columns), by module name. */
function quantizeEmbeddings(weights: ReadonlyMap<string, Tensor>, config: ModelConfig, bits: number): Map<string, QuantizedColumns> {
  const names = [tokenEmbeddingName(config), ...(weights.has('lm_head.weight') ? ['lm_head'] : [])];
  return new Map(names.map((name) => {
    const w = weights.get(`${name}.weight`)!;
    const [rows, cols] = w.shape;
    return [name, rtn(w.data as Float32Array, rows, cols, { bits, groupSize: 0 })];
  }));
}

export function quantizeCheckpoint(modelDir: string, outDir: string, o: QuantizeCheckpointOptions, force: boolean): QuantizeCheckpointResult {
  const model = loadModel(modelDir);
  const config = model.config;
  const budget: WeakBudget = o.targetBit !== undefined ? { targetBit: o.targetBit } : o.targetRank !== undefined ? { targetRank: o.targetRank } : null;
  const nOut = weakCounts(config, o.bits, budget);
  checkLayers(model.linears(), model.blockPrefix(0), nOut, o);
  const seqlen = o.seqlen ?? config.maxPositions;
  if (!(Number.isInteger(seqlen) && seqlen >= 2 && seqlen <= config.maxPositions)) {
    throw new RangeError(`calibration seqlen ${seqlen}: expected an integer in [2, ${config.maxPositions}]`);
  }
  const calibOptions = { nsamples: o.nsamples, seqlen, seed: o.seed };
  let calibration: Calibration | null = null;
  if (o.method !== 'rtn') {
    calibration = o.calibTokens !== undefined
      ? readCalibrationTokens(o.calibTokens, calibOptions, config.vocabSize)
      : sampleCalibration(o.calib, loadTokenizer(modelDir), calibOptions);
  }
  const tuning = o.tuning ?? (o.method === 'owq' ? 'mse' : 'minmax');
  const steps = model.numBlocks * (quantFamily(config).linears.length + (o.method === 'rtn' ? 0 : 2));
  let done = 0;
  const started = performance.now();
  const results = quantizeModel(model, {
    method: o.method, bits: o.bits, groupSize: o.groupSize, tuning, actOrder: o.actOrder, trueSequential: o.trueSequential,
    nOut, percdamp: o.percdamp, windows: calibration?.windows ?? [],
    onProgress: () => o.onProgress?.(Math.min(++done, steps), steps),
  });
  const seconds = (performance.now() - started) / 1000;
  const embeddings = o.embedBits === undefined ? new Map<string, QuantizedColumns>() : quantizeEmbeddings(model.parameters(), config, o.embedBits);
  const packed = new Map([...results, ...embeddings].map(([name, q]) => [name, toPacked(q)]));
  const qc = writePackedCheckpoint(path.resolve(outDir), {
    sourceDir: path.resolve(modelDir),
    weights: model.parameters(),
    packed,
    quantConfig: {
      format: PACKED_FORMAT, version: PACKED_VERSION, method: o.method, bits: o.bits as PackedBits, group_size: o.groupSize,
      target_bit: o.targetBit ?? null, target_rank: o.targetRank ?? null, tuning, act_order: o.actOrder,
      true_sequential: o.trueSequential, percdamp: o.percdamp,
      calibration: calibration === null ? null : { data: calibration.source, ...calibOptions },
      n_out: Object.fromEntries([...results].map(([name, q]) => [name, q.cols - q.nQuant])),
      embeddings: Object.fromEntries([...embeddings].map(([name, q]) => [name, q.bits])),
      avg_bits: { decoder_linear: decoderLinearBits(results.values()) },
    },
  }, force);
  return { config: qc, nOut, seconds };
}
