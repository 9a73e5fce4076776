/**
 * The block-by-block driver every quantization method shares. First, for methods that use gradients (gwq, owq
 * --sensitivity fisher), one gradient pass over the full-precision model (./gradients.ts), reported as one
 * 'gradients' step per window, which leaves each linear's finding (outliers, column sensitivity). Stages per
 * decoder block:
 *   1. transform: the method's block transform, if it has one (before any linear of the block is quantized), on a
 *      record of every linear's input over the calibration batches (./linear-inputs.ts); AWQ reports its steps as
 *      'scale' (one per scaling group) and 'clip' (one per clipped linear);
 *   2. statistics + quantize, per group of linears (one group, or the --true-sequential groups of the family
 *      spec): one calibration pass of the block accumulating each linear's input Hessian (methods whose
 *      statistic is 'hessian'), then the method's quantizer on each linear of the group, whose fake-quantized
 *      weight Ŵ replaces it at once;
 *   3. outputs: the block's outputs recomputed with the quantized block, which are the next block's inputs; or,
 *      for the statistic 'activations' (AWQ), the full-precision outputs of the untransformed block, taken by the
 *      forward that recorded its inputs.
 * Calibration starts from the embeddings of the calibration windows; one block's activations are held at a time
 * (in fp32, or in bf16 with `calibDtype`: ./linear-inputs.ts HeldActivations).
 *
 * Streaming: the pipeline asks its BlockStream to load block i's weights before the block's first forward and hands
 * it each finished block (its quantized linears, its transform record, the next block's inputs, its timings) before
 * the next starts; a stream may then write the block out and release it, and may start the run at a later block
 * with that block's stored inputs (a resumed run). Without a stream every block stays in the model (the caller
 * evaluates the fake-quantized model) and the results are collected and returned. Either way the same code runs.
 * The pipeline reports progress as {done, total} over exactly the steps it runs (those of the blocks it runs).
 *
 * Devices: the pipeline runs where the model is (`await model.toDevice(ctx)` first for the GPU). On the GPU the
 * embeddings, every block forward and the Hessian accumulation run there, each forward in a GPU scope (only the
 * block outputs that feed the next block are kept, and the previous ones freed); the quantizer's column sweep
 * stays on the host: the dense weight and its Hessian are read back, and the fake-quantized Ŵ is uploaded.
 */
import { OptionError } from '../errors.js';
import { GpuArray, type GpuContext } from '../gpu/array.js';
import { familyOf } from '../models/families/registry.js';
import { asDense, DenseLinear, type LinearLayer } from '../models/linear.js';
import type { CausalLM } from '../models/model.js';
import { moveTensor } from '../models/move.js';
import { keep, release, scoped } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { gradientPass } from './gradients.js';
import { Hessian } from './hessian.js';
import {
  HeldActivations,
  recordLinearInputs,
  type Activations,
  type CalibDtype,
  type RecordedBatch,
} from './linear-inputs.js';
import {
  quantMethod,
  type BlockTransform,
  type GradientFinding,
  type MethodSettings,
  type QuantMethod,
  type Statistic,
} from './methods.js';
import type { QuantizedColumns } from './quantized.js';

export interface ModelQuantizeOptions extends MethodSettings {
  /** A registered method (./methods.ts). */
  method: string;
  trueSequential: boolean;
  /** Weak columns per linear kind (name relative to the block prefix); absent = 0. */
  nOut: Map<string, number>;
  /** Calibration windows of equal length (unused by methods whose statistic is 'none'). */
  windows: Int32Array[];
  /** Sequences per block forward pass. */
  batchSize?: number;
  /** How the activations between blocks are held (default fp32). */
  calibDtype?: CalibDtype;
  onProgress?: (p: QuantProgress) => void;
  /** Loads and takes each block (see the top of the file); absent: everything stays in the model. */
  stream?: BlockStream;
}

/** Seconds one block spent in each part of the pipeline (the stream adds its own: packing, writing). */
export interface BlockTimes {
  /** Reading the block's weights (the stream's load). */
  load_s: number;
  /** The block forwards over the calibration batches (recording, calibration and output passes), less the Hessian
   * accumulation inside them. */
  forward_s: number;
  /** Accumulating the input Hessians (and reading them for the quantizer). */
  hessian_s: number;
  /** The method's block transform (AWQ's scale and clip searches), forwards of the search included. */
  transform_s: number;
  /** The quantizer of every linear (GPTQ / OWQ sweep, RTN, AWQ's quantizer). */
  quantize_s: number;
}

/** A block the pipeline finished. */
export interface FinishedBlock {
  block: number;
  /** Its quantized linears by name. */
  layers: Map<string, QuantizedColumns>;
  /** What its transform recorded (null: the method has none). */
  transform: object | null;
  /** The next block's inputs (null for a method without calibration); the stream must not free them. */
  next: HeldActivations | null;
  times: BlockTimes;
}

/** Where the pipeline's blocks come from and go to. */
export interface BlockStream {
  /** The first block to run and its inputs (null without calibration), given the calibration windows embedded
   * afresh (their contexts and device); absent: block 0 from the embeddings. */
  from?: { block: number; inputs: (embedded: Activations) => HeldActivations | null };
  /** Makes block i's weights resident, before its first forward. */
  load(block: number): Promise<void>;
  /** Makes the rest of the model resident (an untied lm_head), before the gradient pass runs it whole. */
  loadHead?(): Promise<void>;
  /** Linear `name` now runs its quantized copy: its dense weight is not read again and may be dropped. */
  replaced?(name: string): void;
  /** Releases block i, read for the gradient pass of a resumed run but finished by the earlier run. */
  release?(block: number): void;
  /** Takes a finished block (awaited before the next block starts). */
  finished(done: FinishedBlock): Promise<void>;
}

export type QuantStage = 'gradients' | 'transform' | 'scale' | 'clip' | 'calibration' | 'quantize' | 'outputs';

export interface QuantProgress {
  /** Steps finished so far, of total (every stage of every block counts one step per unit of work). */
  done: number;
  total: number;
  /** The block (0-based) of `blocks`; for 'gradients', the window (0-based). */
  block: number;
  blocks: number;
  stage: QuantStage;
  /** What just finished: a linear's name for 'quantize' and 'clip', the prev op for 'scale', the window count for
   * 'gradients', else the block prefix. */
  item: string;
}

/** Accumulates each wrapped linear's input Hessian; linears fed the same tensor (q, k, v) share one. */
class HessianCollector {
  readonly hessians = new Map<string, Hessian>();
  private readonly byInput = new WeakMap<Tensor, Hessian>();
  /** Milliseconds spent accumulating. */
  ms = 0;

  wrap(name: string, inner: LinearLayer): LinearLayer {
    return {
      inFeatures: inner.inFeatures,
      outFeatures: inner.outFeatures,
      forward: (x: Tensor) => {
        let h = this.byInput.get(x);
        if (h === undefined) {
          const t0 = performance.now();
          h = this.hessians.get(name) ?? new Hessian(inner.inFeatures, x.storage);
          h.add(x.storage, x.shape[1]);
          this.ms += performance.now() - t0;
          this.byInput.set(x, h);
        }
        this.hessians.set(name, h);
        return inner.forward(x);
      },
      toDevice: (ctx) => inner.toDevice(ctx),
    };
  }
}

function embedWindows(model: CausalLM, windows: Int32Array[], batchSize: number): Activations {
  const batches: Activations = [];
  for (let i = 0; i < windows.length; i += batchSize) {
    const group = windows.slice(i, i + batchSize);
    const ids = new Int32Array(group.length * group[0].length);
    group.forEach((w, j) => ids.set(w, j * w.length));
    batches.push(
      scoped(() => {
        const { h, ctx } = model.embed(ids, { batch: group.length });
        keep(h.storage);
        return { h, ctx };
      }),
    );
  }
  return batches;
}

/** Block `block`'s outputs for `acts` (kept), which replace them: the inputs' storage is freed. */
function blockOutputs(model: CausalLM, block: number, acts: HeldActivations): HeldActivations {
  return acts.map(({ h, ctx }) =>
    scoped(() => {
      const y = model.block(block, h, ctx);
      keep(y.storage);
      return y;
    }),
  );
}

/** Milliseconds since `t0`, as seconds. */
const since = (t0: number): number => (performance.now() - t0) / 1000;

/** The GPU the model's weights are on (null: the host). */
function deviceOf(model: CausalLM): GpuContext | null {
  for (const t of model.parameters().values()) if (t.storage instanceof GpuArray) return t.storage.ctx;
  return null;
}

/** What a progress report says just finished, as a bar's status: `block 2/8: quantize model.layers.1.mlp.up_proj`. */
export function quantStatus(p: QuantProgress): string {
  if (p.stage === 'gradients') return `gradients: window ${p.block + 1}/${p.item}`;
  const named = p.stage === 'quantize' || p.stage === 'scale' || p.stage === 'clip';
  return `block ${p.block + 1}/${p.blocks}: ${p.stage}${named ? ` ${p.item}` : ''}`;
}

/** Counts the steps as they finish and reports them. */
class StageProgress {
  private done = 0;

  constructor(
    readonly total: number,
    private readonly blocks: number,
    private readonly report?: (p: QuantProgress) => void,
  ) {}

  step(block: number, stage: QuantStage, item: string): void {
    this.done += 1;
    this.report?.({ done: this.done, total: this.total, block, blocks: this.blocks, stage, item });
  }
}

/**
 * The block's input Hessians of `group`'s linears, from one calibration pass (the block's outputs are not kept);
 * the pass's time goes to `times` (forward_s, hessian_s).
 */
function captureHessians(
  model: CausalLM,
  block: number,
  group: readonly string[],
  acts: HeldActivations,
  times: BlockTimes,
): Map<string, Hessian> {
  const t0 = performance.now();
  const collector = new HessianCollector();
  const originals = group.map((name) => [name, model.linears().get(name)!] as const);
  for (const [name, layer] of originals) model.setLinear(name, collector.wrap(name, layer));
  for (let j = 0; j < acts.length; j++) {
    const { h, ctx } = acts.batch(j);
    scoped(() => model.block(block, h, ctx));
  }
  for (const [name, layer] of originals) model.setLinear(name, layer);
  times.hessian_s += collector.ms / 1000;
  times.forward_s += since(t0) - collector.ms / 1000;
  return collector.hessians;
}

interface BlockRun {
  model: CausalLM;
  method: QuantMethod;
  o: ModelQuantizeOptions;
  groups: string[][];
  progress: StageProgress;
  /** The GPU the model runs on, null on the host. */
  gpu: GpuContext | null;
  statistic: Statistic;
  /** The gradient pass's findings by linear name (empty without one). */
  found: Map<string, GradientFinding>;
  stream: BlockStream;
}

/**
 * Stage 2 for one block: each group's statistics, then its linears quantized in place (on the host, see above);
 * returns them by name.
 */
async function quantizeBlock(
  run: BlockRun,
  block: number,
  acts: HeldActivations | null,
  times: BlockTimes,
): Promise<Map<string, QuantizedColumns>> {
  const { model, method, o, progress } = run;
  const prefix = model.blockPrefix(block);
  const results = new Map<string, QuantizedColumns>();
  for (const shortNames of run.groups) {
    const group = shortNames.map((short) => `${prefix}.${short}`);
    let hessians = new Map<string, Hessian>();
    if (run.statistic === 'hessian') {
      hessians = captureHessians(model, block, group, acts!, times);
      progress.step(block, 'calibration', prefix);
    }
    for (const [j, short] of shortNames.entries()) {
      const name = group[j];
      const dense = asDense(name, model.linears().get(name)); // the pipeline replaces each linear once
      const [rows, cols] = dense.weight.shape;
      await moveTensor(dense.weight, null); // W to the host (not read after its replacement below)
      const weight = dense.weight.data as Float32Array;
      const h = hessians.get(name);
      const t0 = performance.now();
      const hessian = h === undefined ? null : await h.values();
      const t1 = performance.now();
      times.hessian_s += (t1 - t0) / 1000;
      const found = run.found.get(name) ?? null;
      const q = method.quantizeLinear({ name, weight, rows, cols, nOut: o.nOut.get(short) ?? 0, hessian, found }, o);
      times.quantize_s += since(t1);
      run.found.delete(name);
      results.set(name, q);
      const replacement = new DenseLinear(new Tensor(q.dequantized, [rows, cols]), dense.bias);
      if (run.gpu !== null) await replacement.toDevice(run.gpu);
      model.setLinear(name, replacement);
      run.stream.replaced?.(name);
      progress.step(block, 'quantize', name);
    }
    for (const h of new Set(hessians.values())) h.free();
  }
  return results;
}

/**
 * What the pipeline returns without a stream: each linear's quantization by name, and what each block's transform
 * recorded (with a stream, both went to it block by block and are empty here).
 */
export interface QuantizeModelResult {
  layers: Map<string, QuantizedColumns>;
  /** One record per block, in order (empty when the method has no transform). */
  transforms: object[];
}

/** Stage 1: records the block's linear inputs over `acts` and runs the transform on them. */
function transformBlock(
  run: BlockRun,
  transform: BlockTransform,
  block: number,
  acts: HeldActivations | null,
  times: BlockTimes,
): { record: object; outputs: HeldActivations | null } {
  const { model, progress } = run;
  const prefix = model.blockPrefix(block);
  let batches: RecordedBatch[] = [];
  let outputs: HeldActivations | null = null;
  const t0 = performance.now();
  if (acts !== null) {
    const names = [...model.linears().keys()].filter((n) => n.startsWith(`${prefix}.`));
    const recorded = recordLinearInputs(model, block, names, acts.widened());
    batches = recorded.batches;
    outputs = HeldActivations.hold(recorded.outputs, acts.dtype);
  }
  const t1 = performance.now();
  times.forward_s += (t1 - t0) / 1000;
  const record = transform.run({ model, block, prefix, inputs: batches }, (stage, item) =>
    progress.step(block, stage, item),
  );
  times.transform_s += since(t1);
  return { record, outputs };
}

/** The stream of a run without one: every block stays in the model, the results are collected. */
function collecting(into: QuantizeModelResult): BlockStream {
  return {
    load: async () => {},
    finished: async ({ layers, transform }) => {
      for (const [name, q] of layers) into.layers.set(name, q);
      if (transform !== null) into.transforms.push(transform);
    },
  };
}

/**
 * Quantizes every block linear of `model` in place (each becomes its fp32 fake-quantized Ŵ, on the model's device)
 * and returns the results by name.
 */
export async function quantizeModel(model: CausalLM, o: ModelQuantizeOptions): Promise<QuantizeModelResult> {
  const method = quantMethod(o.method);
  const gpu = deviceOf(model);
  const transform = method.transform?.(o) ?? null;
  const gradients = method.gradients?.(o) ?? null;
  if (gpu !== null && transform !== null)
    throw new OptionError(
      'device',
      `method ${method.name}${o.awq.scale && method.name !== 'awq' ? ' with the AWQ scale search' : ''} transforms each block on the host: quantize it with --device cpu (device: cpu in a recipe)`,
    );
  if (gpu !== null && gradients !== null)
    throw new OptionError(
      'device',
      `method ${method.name}${method.name === 'owq' ? ' with --sensitivity fisher' : ''} takes its calibration gradients on the host: quantize it with --device cpu (device: cpu in a recipe)`,
    );
  const calibDtype = o.calibDtype ?? 'fp32';
  if (gpu !== null && calibDtype === 'bf16')
    throw new OptionError('calib_dtype', 'bf16 calibration activations are held on the host: use fp32 on the GPU');
  const spec = familyOf(model.config);
  const groups = o.trueSequential ? spec.quant.sequential : [spec.blockLinears(model.config).map((l) => l.name)];
  const statistic = method.statistic(o);
  const calibrated = statistic !== 'none';
  const linears = groups.flat().length;
  const perBlock =
    (transform?.steps(model) ?? 0) +
    linears +
    (statistic === 'hessian' ? groups.length + 1 : statistic === 'activations' ? 1 : 0);
  const gradientSteps = gradients?.windows ?? 0;
  const collected: QuantizeModelResult = { layers: new Map(), transforms: [] };
  const stream = o.stream ?? collecting(collected);
  const first = stream.from?.block ?? 0;
  const run: BlockRun = {
    model,
    method,
    o,
    groups,
    progress: new StageProgress(gradientSteps + (model.numBlocks - first) * perBlock, model.numBlocks, o.onProgress),
    gpu,
    statistic,
    found: new Map(),
    stream,
  };
  if (gradients !== null) {
    for (let block = 0; block < model.numBlocks; block++) await stream.load(block); // the pass needs every block
    await stream.loadHead?.();
    const names = Array.from({ length: model.numBlocks }, (_, b) =>
      groups.flat().map((n) => `${model.blockPrefix(b)}.${n}`),
    );
    const pass = gradientPass(model, names.flat(), o.windows, gradients, (s) =>
      run.progress.step(s, 'gradients', String(gradientSteps)),
    );
    run.found = pass.reduced;
    for (let block = 0; block < first; block++) stream.release?.(block);
  }
  let acts = calibrated ? firstInputs(model, o, stream, calibDtype) : null;
  for (let block = first; block < model.numBlocks; block++) {
    const prefix = model.blockPrefix(block);
    const times: BlockTimes = { load_s: 0, forward_s: 0, hessian_s: 0, transform_s: 0, quantize_s: 0 };
    const t0 = performance.now();
    await stream.load(block);
    times.load_s = since(t0);
    let fullPrecisionOutputs: HeldActivations | null = null;
    let record: object | null = null;
    if (transform !== null) {
      const t = transformBlock(run, transform, block, acts, times);
      record = t.record;
      fullPrecisionOutputs = t.outputs;
    }
    const layers = await quantizeBlock(run, block, acts, times);
    const t1 = performance.now();
    if (statistic === 'hessian') acts = blockOutputs(model, block, acts!);
    else if (statistic === 'activations') acts = fullPrecisionOutputs;
    times.forward_s += since(t1);
    if (calibrated) run.progress.step(block, 'outputs', prefix);
    await stream.finished({ block, layers, transform: record, next: acts, times });
  }
  acts?.free();
  return collected;
}

/** The first block's inputs: the embedded calibration windows, or (a resumed run) the stream's stored ones. */
function firstInputs(
  model: CausalLM,
  o: ModelQuantizeOptions,
  stream: BlockStream,
  calibDtype: CalibDtype,
): HeldActivations | null {
  const embedded = embedWindows(model, o.windows, o.batchSize ?? 8);
  if (stream.from === undefined) return HeldActivations.hold(embedded, calibDtype);
  const inputs = stream.from.inputs(embedded);
  for (const { h } of embedded) release(h.storage);
  return inputs;
}
