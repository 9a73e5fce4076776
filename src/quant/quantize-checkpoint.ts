/**
 * Full-precision checkpoint directory -> packed checkpoint directory, one block at a time: the checkpoint is opened
 * streamed (src/models/streamed-weights.ts: the embeddings are read, each block's tensors when the block starts),
 * the calibration drawn, and the block pipeline run with a stream that packs each finished block, stores it with
 * the next block's inputs in the run's partial state (./partial-run.ts) and releases it; the packed checkpoint is
 * then assembled from the stored blocks by a streaming copy and written atomically, and the partial state removed.
 * Held at once: the embeddings and the final norm, one block's weights in fp32 (each linear's dense weight until
 * its quantized copy replaces it) and one block's calibration activations; an untied lm_head is read after the
 * last block, for the packed file. Methods with a gradient pass (gwq, owq with sensitivity fisher) read every block
 * first, since the pass runs the whole full-precision model. Shared by `wct quantize` and `wct-train` (which
 * quantizes its base on the fly when a recipe names a full-precision model).
 *
 * Test hook: WCT_TEST_EXIT_AFTER_BLOCKS=N kills the process (SIGKILL, as a crash) once N blocks are stored in this
 * run, for the resume test (test/e2e/quantize-resume.test.ts).
 */
import path from 'node:path';
import { OptionError } from '../errors.js';
import type { GpuContext } from '../gpu/array.js';
import {
  PACKED_FORMAT,
  PACKED_VERSION,
  packedTensors,
  writePackedCheckpoint,
  type PackedModelToWrite,
  type QuantConfig,
} from '../io/packed-checkpoint.js';
import { loadTokenizer } from '../models/tokenizer.js';
import { headTensorNames, resolveTensorName } from '../models/checkpoint-tensors.js';
import { moveTensor } from '../models/move.js';
import type { CausalLM, ModelConfig } from '../models/model.js';
import { StreamedWeights } from '../models/streamed-weights.js';
import type { PackedBits } from '../native/packed.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensorsInSourceDtypes } from '../io/checkpoint-write.js';
import type { Phases } from '../util/phases.js';
import { concatenatedCalibration, readCalibrationTokens, sampleCalibration, type Calibration } from './calibration.js';
import { quantMethod } from './methods.js';
import type { QuantizeOptions } from './options.js';
import { toPacked } from './pack.js';
import { HeldActivations, type CalibDtype } from './linear-inputs.js';
import { PartialRun, runKey, type PartialMode } from './partial-run.js';
import {
  quantizeModel,
  quantStatus,
  type BlockStream,
  type BlockTimes,
  type FinishedBlock,
  type QuantProgress,
} from './pipeline.js';
import type { QuantizedColumns } from './quantized.js';
import { rtn } from './rtn.js';
import { weakCounts } from './weak-count.js';

/** One block's seconds in each part: the pipeline's (./pipeline.ts BlockTimes), then packing and writing its part. */
export interface BlockReport extends BlockTimes {
  block: number;
  pack_s: number;
  /** Writing the block's part and the next block's inputs (the partial state). */
  write_s: number;
}

export interface QuantizeCheckpointResult {
  config: QuantConfig;
  /** Weak columns per linear kind (name relative to the block prefix). */
  nOut: Map<string, number>;
  seconds: number;
  /** Per block, in order (a resumed run's earlier blocks as their run measured them). */
  blocks: BlockReport[];
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
  /** What to do with an interrupted run's partial state beside the output (default restart: discard it). */
  partial?: PartialMode;
  /** Called at each linear's quantize step with the linear and the tensors then read (streamed-weights resident()):
   * for tests. */
  onResident?: (block: number, linear: string, resident: string[]) => void;
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

/** What the bit counts and quantization_config.json need of a quantized linear (kept for each stored block). */
export interface LinearSummary {
  rows: number;
  cols: number;
  bits: number;
  nQuant: number;
  nGroups: number;
  outlierCount: number;
}

const summaryOf = (q: QuantizedColumns): LinearSummary => ({
  rows: q.rows,
  cols: q.cols,
  bits: q.bits,
  nQuant: q.nQuant,
  nGroups: q.nGroups,
  outlierCount: q.outliers?.index.length ?? 0,
});

/** The papers' average: low-bit columns plus 16-bit weak columns (and 16-bit outliers: GWQ's b + 16ρ), over the
 * decoder linears' weights. */
export function decoderLinearBits(layers: Iterable<QuantizedColumns | LinearSummary>): number {
  let bits = 0;
  let weights = 0;
  for (const q of layers) {
    bits += q.rows * (q.nQuant * q.bits + (q.cols - q.nQuant) * 16) + 16 * outlierCount(q);
    weights += q.rows * q.cols;
  }
  return bits / weights;
}

const outlierCount = (q: QuantizedColumns | LinearSummary): number =>
  'outlierCount' in q ? q.outlierCount : (q.outliers?.index.length ?? 0);

/** Stored bits per decoder-linear weight: b per element (weak and outlier positions hold a code too), 32 per
 * (row, group) for the fp16 scale and zero, 16 per weak element, 48 per outlier (a 32-bit column index and an fp16
 * value). */
export function storedBits(layers: Iterable<QuantizedColumns | LinearSummary>): number {
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
  results: Map<string, LinearSummary>,
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
  { layers: results, transforms }: StoredBlocks,
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

/** What the stored blocks add up to: every linear's summary and each block's transform record. */
interface StoredBlocks {
  layers: Map<string, LinearSummary>;
  transforms: object[];
  reports: BlockReport[];
}

/** The blocks an earlier run stored (read back from their parts' metadata). */
function storedBlocks(partial: PartialRun): StoredBlocks {
  const stored: StoredBlocks = { layers: new Map(), transforms: [], reports: [] };
  for (let block = 0; block < partial.done; block++) {
    const meta = partial.meta(block);
    for (const [name, q] of Object.entries(JSON.parse(meta.linears) as Record<string, LinearSummary>))
      stored.layers.set(name, q);
    const transform = JSON.parse(meta.transform) as object | null;
    if (transform !== null) stored.transforms.push(transform);
  }
  stored.reports.push(...(partial.reports as BlockReport[]));
  return stored;
}

/** Kills the process once `done` blocks are stored when WCT_TEST_EXIT_AFTER_BLOCKS says so (the resume test). */
function testCrashAfter(done: number): void {
  if (process.env.WCT_TEST_EXIT_AFTER_BLOCKS === String(done)) process.kill(process.pid, 'SIGKILL');
}

/** The pipeline's stream: block i read when it starts; packed, stored and released when it finishes. */
function storingStream(
  modelDir: string,
  streamed: StreamedWeights,
  partial: PartialRun,
  stored: StoredBlocks,
  calibDtype: CalibDtype,
): BlockStream {
  const model = streamed.model;
  return {
    from:
      partial.done === 0
        ? undefined
        : {
            block: partial.done,
            inputs: (embedded) =>
              partial.done < model.numBlocks
                ? HeldActivations.fromStored(partial.inputs(), embedded, calibDtype)
                : null,
          },
    load: (block) => streamed.load(block),
    loadHead: () => streamed.loadHead(),
    replaced: (name) => streamed.drop(`${name}.weight`),
    release: (block) => streamed.release(block),
    finished: async (f: FinishedBlock) => {
      if (f.block !== partial.done) throw new Error(`block ${f.block} finished after ${partial.done} stored blocks`);
      const t0 = performance.now();
      const packed = [...f.layers].map(([name, q]) => [name, toPacked(q)] as const);
      const t1 = performance.now();
      const prefix = `${model.blockPrefix(f.block)}.`;
      const own = new Map([...model.parameters()].filter(([name]) => name.startsWith(prefix)));
      for (const t of own.values()) await moveTensor(t, null); // the norms and biases, back from the GPU
      const skip = new Set(packed.map(([name]) => `${name}.weight`));
      const tensors = tensorsInSourceDtypes(modelDir, own, resolveTensorName, skip);
      for (const [name, w] of packed) tensors.push(...packedTensors(name, w));
      const last = f.block === model.numBlocks - 1;
      const inputs = f.next === null || last ? null : await f.next.stored();
      const linears = Object.fromEntries([...f.layers].map(([name, q]) => [name, summaryOf(q)]));
      partial.store(tensors, { linears: JSON.stringify(linears), transform: JSON.stringify(f.transform) }, inputs);
      const report: BlockReport = {
        block: f.block,
        ...f.times,
        pack_s: (t1 - t0) / 1000,
        write_s: (performance.now() - t1) / 1000,
      };
      partial.count(report);
      for (const [name, q] of Object.entries(linears)) stored.layers.set(name, q);
      if (f.transform !== null) stored.transforms.push(f.transform);
      stored.reports.push(report);
      streamed.release(f.block);
      testCrashAfter(partial.done);
    },
  };
}

/** Quantizes `modelDir` as `o` says and writes the packed checkpoint `outDir`. */
export async function quantizeCheckpoint(
  modelDir: string,
  outDir: string,
  o: QuantizeOptions,
  run: QuantizeCheckpointRun,
): Promise<QuantizeCheckpointResult> {
  const streamed = new StreamedWeights(modelDir);
  try {
    return await quantizeStreamed(streamed, modelDir, outDir, o, run);
  } finally {
    streamed.close();
  }
}

async function quantizeStreamed(
  streamed: StreamedWeights,
  modelDir: string,
  outDir: string,
  o: QuantizeOptions,
  run: QuantizeCheckpointRun,
): Promise<QuantizeCheckpointResult> {
  const model = streamed.model;
  const config = model.config;
  const nOut = weakCounts(config, o.bits, quantMethod(o.method).weakColumns ? o.budget : null);
  checkLayers(model, nOut, o);
  const calibration = calibrationFor(modelDir, config, o, run.phases);
  const gpu = run.gpu ?? null;
  const calibDtype = o.calibration.dtype;
  const windows = calibration?.windows ?? [];
  const key = runKey(modelDir, { o, device: gpu === null ? 'cpu' : 'gpu' }, windows);
  const partial = PartialRun.open(path.resolve(outDir), key, run.partial ?? 'restart');
  const stored = storedBlocks(partial);
  const started = performance.now();
  const phase = run.phases?.start('quantize');
  const onProgress = (p: QuantProgress) => {
    if (p.stage === 'quantize') run.onResident?.(p.block, p.item, streamed.resident());
    run.onProgress?.(p);
    phase?.update(p.done, p.total, quantStatus(p));
  };
  if (gpu !== null) await streamed.toDevice(gpu);
  const stream = storingStream(modelDir, streamed, partial, stored, calibDtype);
  await quantizeModel(model, { ...o, nOut, windows, calibDtype, onProgress, stream });
  if (gpu !== null) await streamed.toDevice(null); // the packed file is written from the host
  await streamed.loadHead();
  const seconds = (performance.now() - started) / 1000;
  phase?.end(`${model.numBlocks} blocks (${o.method}, ${o.bits}-bit)`);
  const weights = model.parameters();
  const embeddings =
    o.embedBits === null ? new Map<string, QuantizedColumns>() : quantizeEmbeddings(weights, config, o.embedBits);
  const held = new Map(streamed.resident().map((name) => [name, weights.get(name)!]));
  const parts = partial.tensors();
  try {
    const qc = writePackedCheckpoint(
      path.resolve(outDir),
      {
        sourceDir: path.resolve(modelDir),
        weights: held,
        storedName: resolveTensorName,
        packed: new Map([...embeddings].map(([name, q]) => [name, toPacked(q)])),
        copied: parts.tensors,
        parameters: [...weights.values()].reduce((n, t) => n + t.size, 0),
        quantConfig: quantConfigOf(o, calibration, stored, embeddings),
      },
      run.force,
      run.writtenBy,
    );
    partial.remove();
    return { config: qc, nOut, seconds, blocks: stored.reports };
  } finally {
    parts.close();
  }
}
