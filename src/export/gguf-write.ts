/**
 * The GGUF v3 container (llama.cpp's gguf-py/gguf/constants.py and ggml/include/gguf.h), little-endian:
 *   magic "GGUF", u32 version 3, u64 tensor count, u64 metadata count;
 *   each metadata entry: string key, u32 value type, value (a string is u64 byte length + UTF-8 bytes; an array is
 *     u32 element type, u64 count, the elements);
 *   each tensor: string name, u32 n_dims, u64 ne[0..n_dims) (ne[0] the innermost, contiguous dimension: an
 *     [out, in] weight has ne = [in, out]), u32 ggml type, u64 offset of its data from the start of the data section;
 *   zero padding to `general.alignment` (32), then the tensors' data, each starting at a multiple of it.
 * Callers write it inside a directory written atomically (src/io/checkpoint-write.ts writeDirAtomic).
 */
import fs from 'node:fs';
import { GGML_TYPES, type GgmlType } from './gguf-quants.js';

/** GGUF's default and our alignment of the data section and of every tensor in it. */
export const GGUF_ALIGNMENT = 32;
const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;

/** A metadata value with its GGUF value type (the names of gguf-py's GGUFValueType). */
export type GgufValue =
  | { type: 'UINT32'; value: number }
  | { type: 'INT32'; value: number }
  | { type: 'FLOAT32'; value: number }
  | { type: 'BOOL'; value: boolean }
  | { type: 'STRING'; value: string }
  | { type: 'ARRAY'; of: 'STRING'; value: readonly string[] }
  | { type: 'ARRAY'; of: 'FLOAT32' | 'INT32'; value: ArrayLike<number> };

const VALUE_TYPE = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;

/** A tensor to write: `shape` in row-major order as Hugging Face writes it ([out, in]); `data` already in `type`. */
export interface GgufTensor {
  name: string;
  shape: readonly number[];
  type: GgmlType;
  data: Uint8Array;
}

/** Zero bytes after `length` bytes up to the next multiple of the alignment. */
const padding = (length: number) => (GGUF_ALIGNMENT - (length % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;

/** Little-endian bytes appended piece by piece. */
class ByteWriter {
  private chunks: Uint8Array[] = [];
  length = 0;

  private scalar(bytes: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    this.bytes(b);
  }
  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    this.scalar(4, (d) => d.setUint32(0, v, true));
  }
  i32(v: number): void {
    this.scalar(4, (d) => d.setInt32(0, v, true));
  }
  f32(v: number): void {
    this.scalar(4, (d) => d.setFloat32(0, v, true));
  }
  u64(v: number): void {
    this.scalar(8, (d) => d.setBigUint64(0, BigInt(v), true));
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  padToAlignment(): void {
    this.bytes(new Uint8Array(padding(this.length)));
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  w.u32(VALUE_TYPE[v.type]);
  if (v.type === 'UINT32') w.u32(v.value);
  else if (v.type === 'INT32') w.i32(v.value);
  else if (v.type === 'FLOAT32') w.f32(v.value);
  else if (v.type === 'BOOL') w.bytes(Uint8Array.of(v.value ? 1 : 0));
  else if (v.type === 'STRING') w.string(v.value);
  else {
    w.u32(VALUE_TYPE[v.of]);
    w.u64(v.value.length);
    if (v.of === 'STRING') for (const s of v.value) w.string(s);
    else for (const x of Array.from(v.value)) v.of === 'INT32' ? w.i32(x) : w.f32(x);
  }
}

/** The header, metadata and tensor infos, padded to the alignment; the tensors' offsets follow from their sizes. */
function headerBytes(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): ByteWriter {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    writeValue(w, value);
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.shape.length);
    for (const n of [...t.shape].reverse()) w.u64(n);
    w.u32(GGML_TYPES[t.type].id);
    w.u64(offset);
    offset += t.data.length + padding(t.data.length);
  }
  w.padToAlignment();
  return w;
}

/** Writes a GGUF v3 file of `metadata` (in insertion order) and `tensors` (in order) to `file`. */
export function writeGguf(
  file: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
): void {
  const fd = fs.openSync(file, 'w');
  try {
    const header = headerBytes(metadata, tensors).toBuffer();
    fs.writeSync(fd, header);
    for (const t of tensors) {
      fs.writeSync(fd, t.data);
      fs.writeSync(fd, new Uint8Array(padding(t.data.length)));
    }
  } finally {
    fs.closeSync(fd);
  }
}
