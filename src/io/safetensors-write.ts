/**
 * Safetensors writer producing the same bytes as the HF library (safetensors `serialize`):
 * tensors sorted by dtype rank descending then by name (byte order), laid out contiguously in
 * that order (every tensor then starts at a multiple of its element size), header JSON with
 * `__metadata__` first and the tensors in layout order, padded with spaces to a multiple of 8.
 * Metadata keys are sorted (HF writes them in hash order; sorting makes our files reproducible).
 *
 * The file is written to `<path>.tmp-<pid>` and renamed over `path`, so readers never see a
 * half-written checkpoint. A tensor may also be given as a TensorToCopy, whose bytes are read only when the writer
 * reaches it: a file larger than memory is then assembled from others one tensor at a time.
 */
import fs from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { DTYPES, f32ToBf16Array, f32ToF16Array, type Dtype } from './dtype.js';

export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** The elements in the typed array matching `dtype` (Uint16Array holds F16/BF16 bits), or raw
   * little-endian bytes as a Uint8Array. For F16/BF16 a Float32Array is converted (round to nearest even). */
  data: ArrayBufferView;
}

/** A tensor whose stored bytes (little-endian, exactly dtype x shape) are read when the writer reaches it. */
export interface TensorToCopy {
  name: string;
  dtype: Dtype;
  shape: number[];
  read: () => Uint8Array;
}

type AnyTensor = TensorToWrite | TensorToCopy;

const isCopy = (t: AnyTensor): t is TensorToCopy => 'read' in t;

const ARRAY_FOR: Record<Dtype, string> = {
  U8: 'Uint8Array',
  I8: 'Int8Array',
  F16: 'Uint16Array',
  BF16: 'Uint16Array',
  I32: 'Int32Array',
  F32: 'Float32Array',
  F64: 'Float64Array',
  I64: 'BigInt64Array',
};

/** The bytes a tensor takes in the file (its dtype's size times its elements). */
export function storedBytes(t: Pick<AnyTensor, 'shape' | 'dtype'>): number {
  return t.shape.reduce((n, d) => n * d, DTYPES[t.dtype].bytes);
}

/** Fp32 input given for a 16-bit dtype: converted when the tensor is written. */
function isConvertedF32(t: TensorToWrite): boolean {
  return t.data instanceof Float32Array && (t.dtype === 'F16' || t.dtype === 'BF16');
}

/** Throws when `data` has the wrong array type or length for `dtype` x `shape`. */
function checkTensor(t: TensorToWrite): void {
  const kind = t.data.constructor.name;
  if (!isConvertedF32(t) && !(t.data instanceof Uint8Array) && kind !== ARRAY_FOR[t.dtype]) {
    throw new Error(
      `writeSafetensors: ${t.name}: dtype ${t.dtype} needs ${ARRAY_FOR[t.dtype]} or Uint8Array, got ${kind}`,
    );
  }
  const expected = isConvertedF32(t) ? storedBytes(t) * 2 : storedBytes(t);
  if (t.data.byteLength !== expected) {
    throw new Error(
      `writeSafetensors: ${t.name}: ${t.data.byteLength} bytes of ${kind} data do not fit shape [${t.shape}] x ${t.dtype}`,
    );
  }
}

/** The tensor's bytes as stored (converted from fp32 for F16/BF16 when needed; a copy's, read now and checked). */
function tensorBytes(t: AnyTensor): Uint8Array {
  if (isCopy(t)) {
    const bytes = t.read();
    if (bytes.byteLength !== storedBytes(t))
      throw new Error(`writeSafetensors: ${t.name}: read ${bytes.byteLength} bytes for [${t.shape}] x ${t.dtype}`);
    return bytes;
  }
  let data = t.data;
  if (isConvertedF32(t))
    data = t.dtype === 'F16' ? f32ToF16Array(t.data as Float32Array) : f32ToBf16Array(t.data as Float32Array);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The HF layout order: dtype rank descending, then name. */
function layoutOrder<T extends AnyTensor>(tensors: T[]): T[] {
  return [...tensors].sort((a, b) => DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || byteOrder(a.name, b.name));
}

/** A JSON object from [key, JSON text] pairs, keys kept in order (a JS object would move
 * integer-like keys such as "0" first). */
function jsonObject(entries: [string, string][]): string {
  return `{${entries.map(([key, json]) => `${JSON.stringify(key)}:${json}`).join(',')}}`;
}

/** The 8-byte length followed by the space-padded header JSON. */
function headerBytes(ordered: AnyTensor[], metadata?: Record<string, string>): Uint8Array {
  const entries: [string, string][] = [];
  if (metadata) {
    const sorted = Object.entries(metadata).sort(([a], [b]) => byteOrder(a, b));
    entries.push(['__metadata__', jsonObject(sorted.map(([k, v]) => [k, JSON.stringify(v)]))]);
  }
  let offset = 0;
  for (const t of ordered) {
    const size = storedBytes(t);
    entries.push([t.name, JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] })]);
    offset += size;
  }
  const json = Buffer.from(jsonObject(entries));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/** Writes all of `bytes`, in chunks below the 2 GiB limit of one write call. */
function writeAll(fd: number, bytes: Uint8Array): void {
  const chunk = 1 << 30;
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, Math.min(chunk, bytes.length - done));
}

/** Writes `tensors` (names unique) and optional string metadata to `path`, atomically. */
export function writeSafetensors(path: string, tensors: AnyTensor[], metadata?: Record<string, string>): void {
  const names = new Set(tensors.map((t) => t.name));
  if (names.size !== tensors.length) throw new Error('writeSafetensors: duplicate tensor names');
  if (names.has('__metadata__')) throw new Error('writeSafetensors: "__metadata__" is reserved');
  for (const t of tensors) if (!isCopy(t)) checkTensor(t);
  const ordered = layoutOrder(tensors);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, headerBytes(ordered, metadata));
    for (const t of ordered) writeAll(fd, tensorBytes(t));
  });
}
