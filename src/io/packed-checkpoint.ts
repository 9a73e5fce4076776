/**
 * The packed checkpoint (docs/ARCHITECTURE.md section 5): a Hugging Face directory whose model.safetensors holds,
 * for each quantized linear `<name>`, instead of `<name>.weight`:
 *   <name>.qweight  U8  [out, ceil(in / 8) * bits]  codes, contiguous along the input dim, rows padded to whole
 *                                             8-code blocks (in * bits / 8 when 8 divides in; src/native/packed.ts)
 *   <name>.scales   F16 [out, ceil(in / G)]   per-row (G = in) or per-group scales (the last group shorter
 *                                             when G does not divide in)
 *   <name>.zeros    U8  [out, ceil(in / G)]   integer zero points
 *   <name>.weak_idx I32 [n_out]               sorted input columns kept in full precision (when n_out > 0)
 *   <name>.weak     F16 [out, n_out]          those columns' weights (when n_out > 0)
 *   <name>.perm     I32 [in]                  packed column k holds input column perm[k] (groups + reordering only)
 *   <name>.outlier_row_ptr I32 [out + 1]      GWQ-style sparse outliers in CSR form (when the linear has any):
 *   <name>.outlier_col_idx I32 [nnz]          row r's are p in [row_ptr[r], row_ptr[r+1]), at input column
 *   <name>.outlier_values  F16 [nnz]          col_idx[p] (ascending within a row, never a weak column), value
 *                                             values[p]; their codes hold the zero point. All three or none:
 *                                             none = no outliers (files written before them read unchanged)
 *   <name>.bias                               unchanged
 * Optionally (`wct quantize --embed-bits`) the token embedding table, and an untied lm_head, are stored
 * the same way under their module names (e.g. `model.decoder.embed_tokens.qweight`, [vocab, hidden],
 * per-row round-to-nearest codes, no weak columns); a tied lm_head is that same packed table.
 * Everything else (positional embeddings, norms, and by default the embeddings and lm_head) keeps its
 * original dtype. quantization_config.json says how it was made, from which full-precision checkpoint (`source`),
 * and lists the quantized linears and tables. config.json is the source's with a `quantization_config` naming this
 * format (quant_method "wct-packed": transformers refuses an unknown quant_method instead of loading the model with
 * random weights); a config.json whose quantization_config names another tool's method is refused
 * (checkConfigQuantization). Loading reads the packed tensors as they are: no dense fp32 copy of a quantized weight
 * is made. Writing takes the tensors held in memory and, for a streamed run, the finished blocks' tensors to copy from
 * their part files one at a time (never the whole model in memory).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  outlierFault,
  packedGroups,
  packedRowBytes,
  validatePacked,
  type OutlierFault,
  type PackedBits,
  type PackedWeight,
} from '../native/packed.js';
import { f16BitsToF32, f32ToF16Bits } from './dtype.js';
import { InputError } from '../errors.js';
import { isObject, readJsonObject } from './json-file.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorReader } from './safetensors-read.js';
import { writeSafetensors, type TensorToCopy, type TensorToWrite } from './safetensors-write.js';
import { SINGLE_FILE } from './checkpoint.js';
import { copyModelFiles, tensorsInSourceDtypes, writeDirAtomic, type StoredName } from './checkpoint-write.js';

export const QUANT_CONFIG_FILE = 'quantization_config.json';
export const PACKED_FORMAT = 'wct-packed';
export const PACKED_VERSION = 1;
/** The key of config.json that marks a quantized checkpoint (transformers' name for it). */
export const CONFIG_QUANT_KEY = 'quantization_config';

/** quantization_config.json: how the checkpoint was made and which linears are packed. */
export interface QuantConfig {
  format: typeof PACKED_FORMAT;
  version: number;
  method: string;
  /** The full-precision checkpoint directory it was quantized from (absolute); absent in files written before it. */
  source?: string;
  bits: PackedBits;
  /** 0 = per row. */
  group_size: number;
  target_bit: number | null;
  target_rank: number | null;
  tuning: string;
  act_order: boolean;
  true_sequential: boolean;
  percdamp: number;
  calibration: { data: string; nsamples: number; seqlen: number; seed: number } | null;
  /** Weak columns of every quantized linear, by canonical name (also the list of packed linears). */
  n_out: Record<string, number>;
  /** Packed embedding tables (token embedding, untied lm_head) by module name -> bits, per row, no weak
   * columns; absent or {} when the embeddings keep their original dtype. */
  embeddings?: Record<string, number>;
  avg_bits: { decoder_linear: number; file: number };
  /** AWQ's searches when they ran (method awq, or owq/gptq with the AWQ scale search): what ran, and per block the
   * chosen ratio α of every scaling group (src/quant/awq.ts AwqBlockRecord). Informational: loading ignores it. */
  awq?: { scale: boolean; clip: boolean; grid: number; blocks: object[] };
  /** The gradient pass when it ran (method gwq, owq with sensitivity fisher): S windows, and gwq's choices and its
   * outliers (their count, and the papers' bits b + 16ρ). Informational: loading reads the outliers' tensors. */
  gradients?: {
    windows: number;
    sensitivity?: 'fisher';
    gwq?: {
      score: string;
      quantizer: string;
      outlier_ratio: number;
      outliers: number;
      /** b + 16ρ */
      papers_bits: number;
      /** Stored bits per decoder-linear weight: b per element, 32 per (row, group) for the fp16 scale and zero, 48 per
       * outlier (a 32-bit column index and an fp16 value). */
      stored_bits: number;
    };
  };
}

export function isPackedCheckpoint(dir: string): boolean {
  return fs.existsSync(path.join(dir, QUANT_CONFIG_FILE));
}

const PACKED_BITS = new Set([2, 3, 4, 8]);

/** Reads and checks quantization_config.json (every field a loader relies on). */
export function readQuantConfig(dir: string): QuantConfig {
  const file = path.join(dir, QUANT_CONFIG_FILE);
  const raw = readJsonObject(file);
  if (raw.format !== PACKED_FORMAT)
    throw new InputError(file, 'format', `expected "${PACKED_FORMAT}", got ${JSON.stringify(raw.format)}`);
  if (raw.version !== PACKED_VERSION)
    throw new InputError(file, 'version', `expected ${PACKED_VERSION}, got ${JSON.stringify(raw.version)}`);
  if (!PACKED_BITS.has(raw.bits as number))
    throw new InputError(file, 'bits', `expected 2, 3, 4 or 8, got ${JSON.stringify(raw.bits)}`);
  if (!(Number.isInteger(raw.group_size) && (raw.group_size as number) >= 0)) {
    throw new InputError(file, 'group_size', `expected a non-negative integer, got ${JSON.stringify(raw.group_size)}`);
  }
  if (!isObject(raw.n_out))
    throw new InputError(file, 'n_out', 'expected an object of linear name -> weak-column count');
  for (const [name, n] of Object.entries(raw.n_out)) {
    if (!(Number.isInteger(n) && (n as number) >= 0))
      throw new InputError(file, `n_out.${name}`, `expected a non-negative integer, got ${JSON.stringify(n)}`);
  }
  if (raw.source !== undefined && typeof raw.source !== 'string')
    throw new InputError(file, 'source', `expected a directory path, got ${JSON.stringify(raw.source)}`);
  if (raw.embeddings !== undefined) {
    if (!isObject(raw.embeddings))
      throw new InputError(file, 'embeddings', 'expected an object of module name -> bits');
    for (const [name, b] of Object.entries(raw.embeddings)) {
      if (!PACKED_BITS.has(b as number))
        throw new InputError(file, `embeddings.${name}`, `expected 2, 3, 4 or 8, got ${JSON.stringify(b)}`);
    }
  }
  return raw as unknown as QuantConfig;
}

/** config.json's quantization_config of a packed checkpoint: this format, for tools that read only that key. */
export function configQuantization(qc: Pick<QuantConfig, 'version' | 'bits' | 'group_size' | 'method'>) {
  return {
    quant_method: PACKED_FORMAT,
    format: PACKED_FORMAT,
    version: qc.version,
    bits: qc.bits,
    group_size: qc.group_size,
    method: qc.method,
  };
}

/**
 * Checks the quantization_config of `dir`'s config.json (`raw`, read from `file`): none, or this format's beside its
 * quantization_config.json. Another tool's (GPTQ, AWQ, bitsandbytes...) is refused: its integer tensors would be
 * read as a full-precision model's.
 */
export function checkConfigQuantization(raw: Record<string, unknown>, file: string, dir: string): void {
  const q = raw[CONFIG_QUANT_KEY];
  if (q === undefined || q === null) return;
  if (!isObject(q)) throw new InputError(file, CONFIG_QUANT_KEY, `expected an object, got ${JSON.stringify(q)}`);
  const method = q.quant_method;
  const where = `${CONFIG_QUANT_KEY}.quant_method`;
  if (method === PACKED_FORMAT) {
    if (!isPackedCheckpoint(dir)) {
      throw new InputError(
        file,
        where,
        `"${PACKED_FORMAT}", but ${QUANT_CONFIG_FILE} is missing beside it (a packed checkpoint needs both)`,
      );
    }
    return;
  }
  throw new InputError(
    file,
    where,
    `${JSON.stringify(method ?? null)} is a quantization this project does not read (only full-precision checkpoints and its own "${PACKED_FORMAT}" ones; use the full-precision model)`,
  );
}

/**
 * The full-precision checkpoint the packed checkpoint `dir` was quantized from (quantization_config.json `source`),
 * or undefined when it does not record one (written before it did).
 */
export function packedSource(dir: string): string | undefined {
  return readQuantConfig(dir).source;
}

/** How one packed tensor group is laid out: bits, group size (0 = per row) and weak-column count. */
export interface PackedLayout {
  bits: number;
  groupSize: number;
  nOut: number;
}

/** Every packed module of the checkpoint (the quantized linears, then any packed embedding tables) with its layout. */
export function packedLayouts(qc: QuantConfig): Map<string, PackedLayout> {
  const layouts = new Map<string, PackedLayout>();
  for (const [name, nOut] of Object.entries(qc.n_out))
    layouts.set(name, { bits: qc.bits, groupSize: qc.group_size, nOut });
  for (const [name, bits] of Object.entries(qc.embeddings ?? {})) layouts.set(name, { bits, groupSize: 0, nOut: 0 });
  return layouts;
}

/** Every tensor name that may store the packed module `name` (bias excluded). */
export function packedTensorNames(name: string): string[] {
  return ['qweight', 'scales', 'zeros', 'weak_idx', 'weak', 'perm', ...OUTLIER_SUFFIXES].map(
    (suffix) => `${name}.${suffix}`,
  );
}

/** The tensors of a packed module's CSR outliers, by the PackedOutliers field they hold. */
const OUTLIER_TENSORS = { rowPtr: 'outlier_row_ptr', colIdx: 'outlier_col_idx', values: 'outlier_values' } as const;
const OUTLIER_SUFFIXES = Object.values(OUTLIER_TENSORS);

/**
 * Checks, from the header alone, that the packed tensors of module `name` have the dtypes and shapes the model
 * config gives it (`shape`, [out, in]) and the weak-column count quantization_config.json gives it (stored weak
 * columns are never dropped). Nothing is read.
 */
export function checkPackedTensors(
  ckpt: TensorReader & { path: string },
  name: string,
  shape: readonly number[],
  layout: PackedLayout,
): void {
  const [rows, cols] = shape;
  const { bits, nOut } = layout;
  const file = ckpt.path;
  const expect = (tensor: string, dtype: string, dims: number[]) => {
    if (!ckpt.has(tensor))
      throw new InputError(file, tensor, `missing (expected ${dtype} [${dims}] for a packed ${bits}-bit weight)`);
    const info = ckpt.info(tensor);
    if (info.dtype !== dtype || String(info.shape) !== String(dims)) {
      throw new InputError(
        file,
        tensor,
        `${info.dtype} [${info.shape}] does not match the config (expected ${dtype} [${dims}])`,
      );
    }
  };
  const g = layout.groupSize === 0 ? cols : layout.groupSize;
  expect(`${name}.qweight`, 'U8', [rows, packedRowBytes(cols, bits as PackedBits)]);
  expect(`${name}.scales`, 'F16', [rows, packedGroups(cols, g)]);
  expect(`${name}.zeros`, 'U8', [rows, packedGroups(cols, g)]);
  checkWeakCount(ckpt, name, nOut);
  if (nOut > 0) {
    expect(`${name}.weak_idx`, 'I32', [nOut]);
    expect(`${name}.weak`, 'F16', [rows, nOut]);
  }
  if (ckpt.has(`${name}.perm`)) expect(`${name}.perm`, 'I32', [cols]);
  if (hasOutliers(ckpt, name)) {
    const colIdx = `${name}.${OUTLIER_TENSORS.colIdx}`;
    const { shape: cs } = ckpt.info(colIdx);
    const nnz = cs.length === 1 ? cs[0] : -1;
    if (nnz < 0) throw new InputError(file, colIdx, `shape [${cs}] is not one-dimensional (expected I32 [nnz])`);
    expect(`${name}.${OUTLIER_TENSORS.rowPtr}`, 'I32', [rows + 1]);
    expect(colIdx, 'I32', [nnz]);
    expect(`${name}.${OUTLIER_TENSORS.values}`, 'F16', [nnz]);
  }
}

/** Whether module `name` stores outliers: all three of its outlier tensors, or none (else an InputError). */
function hasOutliers(ckpt: TensorReader & { path: string }, name: string): boolean {
  const stored = OUTLIER_SUFFIXES.filter((s) => ckpt.has(`${name}.${s}`));
  if (stored.length === 0) return false;
  const missing = OUTLIER_SUFFIXES.find((s) => !ckpt.has(`${name}.${s}`));
  if (missing !== undefined) {
    throw new InputError(
      ckpt.path,
      `${name}.${missing}`,
      `missing, but ${name}.${stored[0]} is stored (outliers are ${OUTLIER_SUFFIXES.join(', ')}: all three or none)`,
    );
  }
  return true;
}

/**
 * One packed module (linear or embedding table) from the checkpoint, checked as checkPackedTensors does, then
 * read: scales and weak columns must be finite, and the whole is validated (validatePacked).
 */
export function readPackedLinear(
  ckpt: TensorReader & { path: string },
  name: string,
  shape: readonly number[],
  layout: PackedLayout,
): PackedWeight {
  checkPackedTensors(ckpt, name, shape, layout);
  const [rows, cols] = shape;
  const { bits, nOut } = layout;
  const file = ckpt.path;
  const g = layout.groupSize === 0 ? cols : layout.groupSize;
  const hasPerm = ckpt.has(`${name}.perm`);
  const w: PackedWeight = {
    rows,
    cols,
    bits: bits as PackedBits,
    groupSize: g,
    qweight: ckpt.readRaw(`${name}.qweight`),
    scales: ckpt.readFiniteF32(`${name}.scales`),
    zeros: ckpt.readRaw(`${name}.zeros`),
    perm: hasPerm ? ckpt.readInt32(`${name}.perm`) : null,
    weakIdx: nOut > 0 ? ckpt.readInt32(`${name}.weak_idx`) : new Int32Array(0),
    weak: nOut > 0 ? ckpt.readFiniteF32(`${name}.weak`) : new Float32Array(0),
  };
  try {
    validatePacked(w, name);
  } catch (e) {
    throw new InputError(file, (e as Error).message);
  }
  if (hasOutliers(ckpt, name)) {
    w.outliers = {
      rowPtr: ckpt.readInt32(`${name}.${OUTLIER_TENSORS.rowPtr}`),
      colIdx: ckpt.readInt32(`${name}.${OUTLIER_TENSORS.colIdx}`),
      values: ckpt.readFiniteF32(`${name}.${OUTLIER_TENSORS.values}`),
    };
    const fault = outlierFault(w);
    if (fault !== null) throw new InputError(file, outlierTensor(name, fault), fault.problem);
  }
  return w;
}

/** The tensor a fault of module `name`'s outliers is in. */
function outlierTensor(name: string, fault: OutlierFault): string {
  return `${name}.${fault.field === 'qweight' ? 'qweight' : OUTLIER_TENSORS[fault.field]}`;
}

/** quantization_config.json's n_out for `name` must agree with the weak columns stored (weak_idx and weak exist
 * exactly when n_out > 0; expect() then checks their count). */
function checkWeakCount(ckpt: TensorReader & { path: string }, name: string, nOut: number): void {
  for (const tensor of [`${name}.weak_idx`, `${name}.weak`]) {
    if (ckpt.has(tensor) && nOut === 0) {
      throw new InputError(
        ckpt.path,
        tensor,
        `stored, but ${QUANT_CONFIG_FILE} gives ${name} no weak columns (n_out 0): they would be dropped`,
      );
    }
  }
}

/** The tensors that store one packed linear (bias excluded: it keeps its usual name and dtype). */
export function packedTensors(name: string, w: PackedWeight): TensorToWrite[] {
  const g = packedGroups(w.cols, w.groupSize);
  const tensors: TensorToWrite[] = [
    { name: `${name}.qweight`, dtype: 'U8', shape: [w.rows, packedRowBytes(w.cols, w.bits)], data: w.qweight },
    { name: `${name}.scales`, dtype: 'F16', shape: [w.rows, g], data: w.scales },
    { name: `${name}.zeros`, dtype: 'U8', shape: [w.rows, g], data: w.zeros },
  ];
  if (w.weakIdx.length > 0) {
    tensors.push(
      { name: `${name}.weak_idx`, dtype: 'I32', shape: [w.weakIdx.length], data: w.weakIdx },
      { name: `${name}.weak`, dtype: 'F16', shape: [w.rows, w.weakIdx.length], data: w.weak },
    );
  }
  if (w.perm !== null) tensors.push({ name: `${name}.perm`, dtype: 'I32', shape: [w.cols], data: w.perm });
  const o = w.outliers;
  if (o !== undefined && o.colIdx.length > 0) {
    checkF16Exact(name, w);
    const nnz = o.colIdx.length;
    tensors.push(
      { name: `${name}.${OUTLIER_TENSORS.rowPtr}`, dtype: 'I32', shape: [w.rows + 1], data: o.rowPtr },
      { name: `${name}.${OUTLIER_TENSORS.colIdx}`, dtype: 'I32', shape: [nnz], data: o.colIdx },
      { name: `${name}.${OUTLIER_TENSORS.values}`, dtype: 'F16', shape: [nnz], data: o.values },
    );
  }
  return tensors;
}

/**
 * The outliers are stored as F16: each value must be exact in it, so that the file holds the model that was
 * quantized (a quantizer rounds its outliers to fp16 before it packs them). A value that is not is a bug of
 * the caller: an Error naming the tensor, the element and its place.
 */
function checkF16Exact(name: string, w: PackedWeight): void {
  const o = w.outliers!;
  const p = o.values.findIndex((v) => f16BitsToF32(f32ToF16Bits(v)) !== v);
  if (p < 0) return;
  let r = 0;
  while (o.rowPtr[r + 1] <= p) r++;
  throw new Error(
    `${name}.${OUTLIER_TENSORS.values}: element ${p} (row ${r}, column ${o.colIdx[p]}) is ${o.values[p]}, not exact in fp16 (round the outliers to fp16 before packing: they are stored as F16)`,
  );
}

export interface PackedModelToWrite {
  /** The full-precision checkpoint it was made from: config, tokenizer and the stored dtypes come from there. */
  sourceDir: string;
  /** Every tensor of the model by canonical name; those of packed linears' weights are not written. */
  weights: Map<string, Tensor>;
  /** Finds a canonical name among the source's stored names. */
  storedName: StoredName;
  packed: Map<string, PackedWeight>;
  /** Tensors already stored elsewhere in the output's dtypes (a streamed run's finished blocks), copied as they are,
   * one at a time. */
  copied?: TensorToCopy[];
  /** The model's parameter count (default: that of `weights`), for avg_bits.file. */
  parameters?: number;
  /** quantization_config.json without avg_bits.file, which is measured on the written file. */
  quantConfig: Omit<QuantConfig, 'avg_bits'> & { avg_bits: { decoder_linear: number } };
}

/**
 * Writes the packed checkpoint into a temporary directory beside `outDir` and renames it into place, so
 * `outDir` is never half-written. An existing `outDir` is replaced only with `force`; the directory is
 * marked as written by `writtenBy` (src/io/output-dir.ts).
 */
export function writePackedCheckpoint(
  outDir: string,
  m: PackedModelToWrite,
  force: boolean,
  writtenBy?: string,
): QuantConfig {
  if (fs.existsSync(outDir) && !force) throw new InputError(outDir, '--out', 'exists; pass --force to replace it');
  return writeDirAtomic(
    outDir,
    (tmp) => {
      copyModelFiles(m.sourceDir, tmp);
      const configFile = path.join(tmp, 'config.json');
      const config = { ...readJsonObject(configFile), [CONFIG_QUANT_KEY]: configQuantization(m.quantConfig) };
      fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
      const skip = new Set([...m.packed.keys()].map((n) => `${n}.weight`));
      const tensors = tensorsInSourceDtypes(m.sourceDir, m.weights, m.storedName, skip);
      for (const [name, w] of m.packed) tensors.push(...packedTensors(name, w));
      const file = path.join(tmp, SINGLE_FILE);
      writeSafetensors(file, [...tensors, ...(m.copied ?? [])], { format: 'pt', wct: PACKED_FORMAT });
      const params = m.parameters ?? [...m.weights].reduce((n, [, t]) => n + t.size, 0);
      const qc: QuantConfig = {
        ...m.quantConfig,
        source: m.quantConfig.source ?? path.resolve(m.sourceDir),
        avg_bits: { ...m.quantConfig.avg_bits, file: (fs.statSync(file).size * 8) / params },
      };
      fs.writeFileSync(path.join(tmp, QUANT_CONFIG_FILE), `${JSON.stringify(qc, null, 2)}\n`);
      return qc;
    },
    writtenBy,
  );
}
