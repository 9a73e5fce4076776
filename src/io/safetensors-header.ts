/**
 * Validation of a safetensors header (the JSON between the u64 length and the data section).
 *
 * Format: `{ "__metadata__"?: {string: string}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]} }`
 * with offsets relative to the start of the data section. We accept any tensor order and gaps
 * between tensors (the HF reader insists on a contiguous layout; nothing here depends on it), but
 * every span must match shape x dtype size, lie inside the data section and not overlap another.
 */
import { DTYPES, isDtype, type Dtype } from './dtype.js';
import { InputError } from '../errors.js';
import { isObject, parseJson } from './json-file.js';

/** The HF library refuses headers above 100 MB; so do we, before allocating anything. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  /** Byte range [begin, end) inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** Parses and validates `json` (the header text of `file`) against a data section of `dataBytes`. */
export function parseSafetensorsHeader(file: string, json: string, dataBytes: number): SafetensorsHeader {
  const root = parseJson(file, json, 'header');
  if (!isObject(root)) throw new InputError(file, 'header', 'expected a JSON object');
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(root)) {
    if (name === '__metadata__') metadata = parseMetadata(file, value);
    else tensors.set(name, parseEntry(file, name, value, dataBytes));
  }
  checkNoOverlap(file, tensors);
  return { tensors, metadata };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (!isObject(value)) throw new InputError(file, '__metadata__', 'expected an object of string values');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new InputError(file, `__metadata__.${key}`, `expected a string, got ${JSON.stringify(v)}`);
    }
  }
  return value as Record<string, string>;
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function parseEntry(file: string, name: string, value: unknown, dataBytes: number): TensorEntry {
  if (!isObject(value)) throw new InputError(file, name, 'expected {dtype, shape, data_offsets}');
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDtype(dtype)) {
    throw new InputError(
      file,
      name,
      `unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new InputError(file, name, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw new InputError(
      file,
      name,
      `data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const bytes = shape.reduce((n: number, d: number) => n * d, DTYPES[dtype].bytes);
  if (end - begin !== bytes) {
    throw new InputError(
      file,
      name,
      `data_offsets [${begin},${end}] span ${end - begin} bytes but shape [${shape}] x ${dtype} needs ${bytes}`,
    );
  }
  if (end > dataBytes) {
    throw new InputError(
      file,
      name,
      `data_offsets [${begin},${end}] lie outside the data section (${dataBytes} bytes; file truncated?)`,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

function checkNoOverlap(file: string, tensors: Map<string, TensorEntry>): void {
  const byBegin = [...tensors].filter(([, t]) => t.end > t.begin).sort(([, a], [, b]) => a.begin - b.begin);
  for (let i = 1; i < byBegin.length; i++) {
    const [prevName, prev] = byBegin[i - 1];
    const [name, cur] = byBegin[i];
    if (cur.begin < prev.end) {
      throw new InputError(
        file,
        name,
        `data_offsets [${cur.begin},${cur.end}] overlap tensor ${prevName} [${prev.begin},${prev.end}]`,
      );
    }
  }
}
