/**
 * Strict validation of a safetensors header (the JSON between the u64 length and the data section), stricter
 * than JSON.parse and at least as strict as the HF reader, so that a file is either read exactly as written or
 * refused:
 *
 * - the header is UTF-8 without a byte-order mark, one JSON object starting at its first byte, followed only by
 *   space padding (0x20);
 * - no key repeats, at the top level or inside an entry, and every number is written as a plain non-negative
 *   integer (`1048576.0`, `1e6`, `-0` are refused: JSON.parse hides both faults; ./safetensors-header-scan.ts);
 * - `{ "__metadata__"?: {string: string}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]} }`, with a
 *   known dtype, a shape of non-negative integers, and end - begin = product(shape) x dtype size;
 * - the spans, sorted by begin, tile the data section exactly: the first at 0, each where the previous ends, the
 *   last at the end of the file. A header-length field off by a few bytes moves the data section, so it fails
 *   here instead of reading every tensor shifted.
 */
import { DTYPES, isDtype, type Dtype } from './dtype.js';
import { InputError } from '../errors.js';
import { isObject } from './json-file.js';
import { scanHeaderJson } from './safetensors-header-scan.js';

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

/** Where a header fault is: `tensor <name>` for a tensor entry, else the key itself (`__metadata__`). */
function whereOf(key: string | number): string {
  return key === '__metadata__' ? key : `tensor ${key}`;
}

/** The header's text without its trailing space padding: strict UTF-8, no byte-order mark. */
function headerText(file: string, bytes: Uint8Array): string {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf)
    throw new InputError(file, 'header', 'starts with a UTF-8 byte-order mark (expected "{")');
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0x20) end--;
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(0, end));
  } catch {
    throw new InputError(file, 'header', 'is not valid UTF-8');
  }
}

/** Parses and validates the header `bytes` of `file` against a data section of `dataBytes`. */
export function parseSafetensorsHeader(file: string, bytes: Uint8Array, dataBytes: number): SafetensorsHeader {
  const json = headerText(file, bytes);
  let root: unknown;
  try {
    root = JSON.parse(json);
  } catch {
    throw new InputError(file, 'header', 'not valid JSON');
  }
  if (!isObject(root)) throw new InputError(file, 'header', 'expected a JSON object');
  if (!json.startsWith('{') || !json.endsWith('}')) {
    throw new InputError(
      file,
      'header',
      'has whitespace other than trailing spaces around the JSON object (padding is spaces only)',
    );
  }
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(root)) {
    if (name === '__metadata__') metadata = parseMetadata(file, value);
    else tensors.set(name, parseEntry(file, name, value, dataBytes));
  }
  const fault = scanHeaderJson(json);
  if (fault !== null) {
    const [first, ...rest] = fault.path;
    const field = rest.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
    throw new InputError(file, whereOf(first), field === '' ? fault.problem : `${field}: ${fault.problem}`);
  }
  checkTiling(file, tensors, dataBytes);
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
  const where = whereOf(name);
  if (!isObject(value)) throw new InputError(file, where, 'expected {dtype, shape, data_offsets}');
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDtype(dtype)) {
    throw new InputError(
      file,
      where,
      `unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new InputError(file, where, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw new InputError(
      file,
      where,
      `data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const bytes = shape.reduce((n: number, d: number) => n * d, DTYPES[dtype].bytes);
  if (end - begin !== bytes) {
    throw new InputError(
      file,
      where,
      `data_offsets [${begin},${end}] span ${end - begin} bytes but shape [${shape}] x ${dtype} needs ${bytes}`,
    );
  }
  if (end > dataBytes) {
    throw new InputError(
      file,
      where,
      `data_offsets [${begin},${end}] lie outside the data section (${dataBytes} bytes; file truncated?)`,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

/** The spans sorted by (begin, end) must cover the data section exactly once, in order, with no gap. */
function checkTiling(file: string, tensors: Map<string, TensorEntry>, dataBytes: number): void {
  const sorted = [...tensors].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prevName = '';
  for (const [name, t] of sorted) {
    if (t.begin < at) {
      const prev = tensors.get(prevName)!;
      throw new InputError(
        file,
        whereOf(name),
        `data_offsets [${t.begin},${t.end}] overlap tensor ${prevName} [${prev.begin},${prev.end}]`,
      );
    }
    if (t.begin > at) {
      throw new InputError(
        file,
        whereOf(name),
        `data_offsets [${t.begin},${t.end}] leave bytes [${at},${t.begin}) of the data section unused (tensors must be contiguous)`,
      );
    }
    at = t.end;
    prevName = name;
  }
  if (at !== dataBytes) {
    throw new InputError(
      file,
      'header',
      `the tensors end at byte ${at} of the ${dataBytes}-byte data section (the header length field or the file size is wrong)`,
    );
  }
}
