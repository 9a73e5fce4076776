/**
 * Weak-column deltas (docs/ARCHITECTURE.md section 6): what Weak Column Tuning trained in every quantized
 * linear, in a small safetensors file whose metadata names the packed base (sha256 of its model.safetensors),
 * the recipe hash, the step and the trainable set (`trainable`: weak_columns, outliers or both; absent in the
 * files of earlier versions, which hold weak columns only):
 *   <linear>.weak             F32 [out, n_out]  the tuned weak columns, in the order of the base's sorted weak_idx
 *                                               (weak_columns, both; linears with weak columns)
 *   <linear>.outliers         F32 [nnz]         the tuned values of the linear's sparse outliers, in CSR order
 *   <linear>.outlier_row_ptr  I32 [out + 1]     their positions, as the base stores them: a loader checks they
 *   <linear>.outlier_col_idx  I32 [nnz]           are the base's (outliers, both; linears with outliers)
 * Loaded over the packed base with no merge step; deltas made for another base, or for other outlier
 * positions, are refused.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SINGLE_FILE } from './checkpoint.js';
import { InputError, namingFile } from '../errors.js';
import { checkRegularFile } from './input-file.js';
import { openSafetensors, type SafetensorsFile } from './safetensors-read.js';
import { writeSafetensors, type TensorToWrite } from './safetensors-write.js';

export const DELTAS_FORMAT = 'wct-weak-deltas';

/** What a deltas file carries (the recipe's train.trainable). */
export type DeltasSet = 'weak_columns' | 'outliers' | 'both';
const DELTAS_SETS: readonly DeltasSet[] = ['weak_columns', 'outliers', 'both'];
const carriesWeak = (set: DeltasSet) => set !== 'outliers';
const carriesOutliers = (set: DeltasSet) => set !== 'weak_columns';

export interface DeltasMeta {
  baseSha256: string;
  recipeHash: string;
  step: number;
  /** The tensors written: weak columns (the default), outliers or both. */
  trainable?: DeltasSet;
}

/** The sparse outliers of one linear in CSR form: rowPtr [rows + 1], colIdx [nnz], values [nnz]. */
export interface OutlierDeltas {
  rowPtr: Int32Array;
  colIdx: Int32Array;
  values: Float32Array;
}

/** The weak columns of one linear, data [rows, nOut], and its outliers when it has them. */
export interface WeakColumns {
  rows: number;
  nOut: number;
  data: Float32Array;
  outliers?: OutlierDeltas;
}

/** What a loader expects of one linear of the base: its shape and weak columns, and its outlier positions. */
export interface DeltasLayout {
  rows: number;
  nOut: number;
  outliers?: { rowPtr: Int32Array; colIdx: Int32Array };
}

/** One linear's deltas as read: the tuned weak columns and outlier values, each when the file carries them. */
export interface LayerDeltas {
  weak?: Float32Array;
  outliers?: Float32Array;
}

/** sha256 (hex) of a packed checkpoint directory's model.safetensors, read in chunks. */
export function checkpointSha256(dir: string): string {
  const file = path.join(dir, SINGLE_FILE);
  const hash = createHash('sha256');
  checkRegularFile(file);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 24);
    for (;;) {
      const n = namingFile(file, () => fs.readSync(fd, buf, 0, buf.length, null));
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

const nnzOf = (o: { colIdx: Int32Array } | undefined) => o?.colIdx.length ?? 0;

export function writeWeakDeltas(file: string, layers: Map<string, WeakColumns>, meta: DeltasMeta): void {
  const set = meta.trainable ?? 'weak_columns';
  const tensors: TensorToWrite[] = [];
  for (const [name, w] of layers) {
    if (carriesWeak(set) && w.nOut > 0)
      tensors.push({ name: `${name}.weak`, dtype: 'F32', shape: [w.rows, w.nOut], data: w.data });
    const o = w.outliers;
    if (carriesOutliers(set) && o !== undefined && nnzOf(o) > 0) {
      const nnz = nnzOf(o);
      tensors.push(
        { name: `${name}.outliers`, dtype: 'F32', shape: [nnz], data: o.values },
        { name: `${name}.outlier_row_ptr`, dtype: 'I32', shape: [o.rowPtr.length], data: o.rowPtr },
        { name: `${name}.outlier_col_idx`, dtype: 'I32', shape: [nnz], data: o.colIdx },
      );
    }
  }
  writeSafetensors(file, tensors, {
    format: DELTAS_FORMAT,
    base_sha256: meta.baseSha256,
    recipe_hash: meta.recipeHash,
    step: String(meta.step),
    ...(set === 'weak_columns' ? {} : { trainable: set }),
  });
}

/** The file's trainable set (weak_columns when its metadata has none: a file of an earlier version). */
function deltasSet(file: string, st: SafetensorsFile): DeltasSet {
  const set = st.metadata.trainable ?? 'weak_columns';
  if (!DELTAS_SETS.includes(set as DeltasSet))
    throw new InputError(
      file,
      '__metadata__.trainable',
      `expected weak_columns, outliers or both, got ${JSON.stringify(set)}`,
    );
  return set as DeltasSet;
}

/** The tensor `t` must be there with this dtype and shape. */
function checkTensor(file: string, st: SafetensorsFile, t: string, dtype: 'F32' | 'I32', shape: number[]): void {
  const want = `${dtype} [${shape}]`;
  if (!st.has(t)) throw new InputError(file, t, `missing (expected ${want})`);
  const info = st.info(t);
  if (info.dtype !== dtype || String(info.shape) !== String(shape))
    throw new InputError(file, t, `${info.dtype} [${info.shape}] does not match the base (expected ${want})`);
}

/** The stored outlier positions of `name` must be the base's: a one-line InputError at the first difference. */
function checkPositions(file: string, st: SafetensorsFile, name: string, base: DeltasLayout['outliers'] & object) {
  const nnz = nnzOf(base);
  const [ptrName, colName] = [`${name}.outlier_row_ptr`, `${name}.outlier_col_idx`];
  const mismatch = (t: string, what: string) =>
    new InputError(file, t, `the outlier positions do not match the base's (${what}): deltas for other outliers`);
  for (const t of [ptrName, colName]) {
    if (!st.has(t)) throw new InputError(file, t, 'missing (the outlier positions the values are for)');
    if (st.info(t).dtype !== 'I32') throw new InputError(file, t, `${st.info(t).dtype}, expected I32`);
  }
  const ptr = st.readInt32(ptrName);
  if (ptr.length !== base.rowPtr.length)
    throw mismatch(ptrName, `${ptr.length - 1} rows, the base has ${base.rowPtr.length - 1}`);
  const cols = st.readInt32(colName);
  if (cols.length !== nnz || ptr[ptr.length - 1] !== nnz)
    throw mismatch(colName, `${cols.length} outliers, the base has ${nnz}`);
  const r = base.rowPtr.findIndex((p, i) => ptr[i] !== p);
  if (r >= 0) throw mismatch(ptrName, `row pointer ${r} is ${ptr[r]}, the base's ${base.rowPtr[r]}`);
  const p = base.colIdx.findIndex((c, i) => cols[i] !== c);
  if (p >= 0) {
    const row = base.rowPtr.findIndex((q) => q > p) - 1;
    throw mismatch(colName, `outlier ${p} of row ${row} is at column ${cols[p]}, the base's at ${base.colIdx[p]}`);
  }
}

/**
 * Reads deltas made for the packed checkpoint `baseDir` (refusing another base) and returns each layer's tuned
 * weak columns and outlier values, as far as the file carries them; `expect` gives every layer's [rows, nOut]
 * and outlier positions, which the file's must equal. A tensor for no weak columns or outliers of the base is
 * refused, and every value must be finite.
 */
export function readWeakDeltas(
  file: string,
  baseDir: string,
  expect: Map<string, DeltasLayout>,
): Map<string, LayerDeltas> {
  const st = openSafetensors(file);
  try {
    if (st.metadata.format !== DELTAS_FORMAT)
      throw new InputError(file, '__metadata__.format', `expected "${DELTAS_FORMAT}" (not a weak-deltas file)`);
    const base = checkpointSha256(baseDir);
    if (st.metadata.base_sha256 !== base) {
      throw new InputError(
        file,
        '__metadata__.base_sha256',
        `made for another base (${st.metadata.base_sha256?.slice(0, 12)}...), ${baseDir} is ${base.slice(0, 12)}...`,
      );
    }
    const set = deltasSet(file, st);
    const known = new Set<string>();
    for (const [name, l] of expect) {
      if (carriesWeak(set) && l.nOut > 0) known.add(`${name}.weak`);
      if (carriesOutliers(set) && nnzOf(l.outliers) > 0)
        for (const s of ['outliers', 'outlier_row_ptr', 'outlier_col_idx']) known.add(`${name}.${s}`);
    }
    const unused = st.names().filter((t) => !known.has(t));
    if (unused.length > 0) {
      const shown = unused.slice(0, 5).join(', ') + (unused.length > 5 ? ` and ${unused.length - 5} more` : '');
      const what = { weak_columns: 'weak columns', outliers: 'outliers', both: 'weak columns or outliers' }[set];
      throw new InputError(file, 'tensors', `${unused.length} tensor(s) for no ${what} of the base: ${shown}`);
    }
    const out = new Map<string, LayerDeltas>();
    for (const [name, { rows, nOut, outliers }] of expect) {
      const layer: LayerDeltas = {};
      if (carriesWeak(set) && nOut > 0) {
        checkTensor(file, st, `${name}.weak`, 'F32', [rows, nOut]);
        layer.weak = st.readFiniteF32(`${name}.weak`);
      }
      if (carriesOutliers(set) && outliers !== undefined && nnzOf(outliers) > 0) {
        checkPositions(file, st, name, outliers);
        checkTensor(file, st, `${name}.outliers`, 'F32', [nnzOf(outliers)]);
        layer.outliers = st.readFiniteF32(`${name}.outliers`);
      }
      if (layer.weak !== undefined || layer.outliers !== undefined) out.set(name, layer);
    }
    return out;
  } finally {
    st.close();
  }
}
