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
import { quantizeModel } from './pipeline.js';
import type { QuantizedColumns } from './quantized.js';
import { weakCounts, type WeakBudget } from './weak-count.js';
import { rtn } from './rtn.js';

export interface QuantizeCheckpointResult {
  config: QuantConfig;
  /** Weak columns per linear kind (name relative to the block prefix). */
  nOut: Map<string, number>;
  seconds: number;
}

/**
 * Checks the weak-column counts against every quantized linear's in_features. Any in_features and any group
 * size are packed (src/native/packed.ts: rows padded to whole blocks, the last group shorter when the group
 * size does not divide in_features, as GPTQ's fasterquant forms them).
 */
function checkLayers(linears: ReadonlyMap<string, LinearLayer>, prefix: string, nOut: Map<string, number>, o: QuantizeRecipe): void {
  for (const [short, n] of nOut) {
    const cols = linears.get(`${prefix}.${short}`)!.inFeatures;
    if (n >= cols / 2) {
      const what = o.target_bit !== undefined ? `target bit ${o.target_bit}` : `target rank ${o.target_rank}`;
      throw new RangeError(`${what} is too high: ${n} weak columns for ${short}, which has ${cols} input columns (at most ${Math.ceil(cols / 2) - 1})`);
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

/**
 * Quantizes `modelDir` as the recipe section `o` (model.quantize; `wct quantize` parses its flags into the
 * same shape, src/recipe/schema.ts) says, and writes the packed checkpoint `outDir`.
 */
export function quantizeCheckpoint(
  modelDir: string, outDir: string, o: QuantizeRecipe, force: boolean, onProgress?: (done: number, total: number) => void,
): QuantizeCheckpointResult {
  const model = loadModel(modelDir);
  const config = model.config;
  const budget: WeakBudget = o.target_bit !== undefined ? { targetBit: o.target_bit } : o.target_rank !== undefined ? { targetRank: o.target_rank } : null;
  const nOut = weakCounts(config, o.wbits, budget);
  checkLayers(model.linears(), model.blockPrefix(0), nOut, o);
  const seqlen = o.seqlen ?? config.maxPositions;
  if (!(Number.isInteger(seqlen) && seqlen >= 2 && seqlen <= config.maxPositions)) {
    throw new RangeError(`calibration seqlen ${seqlen}: expected an integer in [2, ${config.maxPositions}]`);
  }
  const calibOptions = { nsamples: o.nsamples, seqlen, seed: o.seed };
  let calibration: Calibration | null = null;
  if (o.method !== 'rtn') {
    calibration = o.calib_tokens !== undefined
      ? readCalibrationTokens(o.calib_tokens, calibOptions, config.vocabSize)
      : sampleCalibration(o.calib, loadTokenizer(modelDir), calibOptions);
  }
  const steps = model.numBlocks * (quantFamily(config).linears.length + (o.method === 'rtn' ? 0 : 2));
  let done = 0;
  const started = performance.now();
  const results = quantizeModel(model, {
    method: o.method, bits: o.wbits, groupSize: o.group_size, tuning: o.tuning, actOrder: o.act_order, trueSequential: o.true_sequential,
    nOut, percdamp: o.percdamp, windows: calibration?.windows ?? [],
    onProgress: () => onProgress?.(Math.min(++done, steps), steps),
  });
  const seconds = (performance.now() - started) / 1000;
  const embeddings = o.embed_bits === undefined ? new Map<string, QuantizedColumns>() : quantizeEmbeddings(model.parameters(), config, o.embed_bits);
  const packed = new Map([...results, ...embeddings].map(([name, q]) => [name, toPacked(q)]));
  const qc = writePackedCheckpoint(path.resolve(outDir), {
    sourceDir: path.resolve(modelDir),
    weights: model.parameters(),
    packed,
    quantConfig: {
      format: PACKED_FORMAT, version: PACKED_VERSION, method: o.method, bits: o.wbits as PackedBits, group_size: o.group_size,
      target_bit: o.target_bit ?? null, target_rank: o.target_rank ?? null, tuning: o.tuning, act_order: o.act_order,
      true_sequential: o.true_sequential, percdamp: o.percdamp,
      calibration: calibration === null ? null : { data: calibration.source, ...calibOptions },
      n_out: Object.fromEntries([...results].map(([name, q]) => [name, q.cols - q.nQuant])),
      embeddings: Object.fromEntries([...embeddings].map(([name, q]) => [name, q.bits])),
      avg_bits: { decoder_linear: decoderLinearBits(results.values()) },
    },
  }, force);
  return { config: qc, nOut, seconds };
}
