/**
 * Streaming safetensors reader.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON header (safetensors-header.ts),
 * then the data section. Only the header is read on open; each tensor is read on request with
 * positioned reads of exactly its bytes, so a checkpoint larger than memory can be walked tensor
 * by tensor. Data is little-endian, like every machine Node runs on in practice (checked below).
 */
import fs from 'node:fs';
import os from 'node:os';
import { bf16ToF32Array, f16ToF32Array, type Dtype } from './dtype.js';
import { InputError, namingFile } from '../errors.js';
import { checkFinite } from './finite.js';
import { checkRegularFile } from './input-file.js';
import { MAX_HEADER_BYTES, parseSafetensorsHeader, type TensorEntry } from './safetensors-header.js';

if (os.endianness() !== 'LE') throw new Error('safetensors I/O assumes a little-endian host');

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
}

/** Read access to named tensors; shared by a single file and a sharded checkpoint. */
export interface TensorReader {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor's bytes as stored (little-endian elements). */
  readRaw(name: string): Uint8Array;
  /** F32 as stored; F16 / BF16 / F64 converted to fp32 (16-bit formats exactly). */
  readF32(name: string): Float32Array;
  /** readF32, with an InputError naming the file, the tensor and the first NaN or infinity (weights must be finite). */
  readFiniteF32(name: string): Float32Array;
  /** I32 as stored; I64 narrowed, with an InputError for a value outside int32. */
  readInt32(name: string): Int32Array;
  close(): void;
}

export interface SafetensorsFile extends TensorReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
}

/** Reads `dest.length` bytes at `position`, in chunks below the 2 GiB limit of one read call. */
function readFully(fd: number, file: string, dest: Uint8Array, position: number): void {
  const chunk = 1 << 30;
  for (let done = 0; done < dest.length; ) {
    const n = namingFile(file, () => fs.readSync(fd, dest, done, Math.min(chunk, dest.length - done), position + done));
    if (n === 0) throw new InputError(file, 'data', `unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Reads and validates the header of `file`; returns the header and the data section's file offset. */
function readHeader(fd: number, file: string) {
  const size = fs.fstatSync(fd).size;
  if (size < 8)
    throw new InputError(file, 'header', `file is ${size} bytes, shorter than the 8-byte header length (truncated?)`);
  const lengthBytes = new Uint8Array(8);
  readFully(fd, file, lengthBytes, 0);
  const n = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new InputError(
      file,
      'header',
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
    );
  }
  const headerBytes = Number(n);
  if (headerBytes < 2)
    throw new InputError(
      file,
      'header',
      `header length ${headerBytes} is too short for a JSON object (not a safetensors file?)`,
    );
  if (8 + headerBytes > size) {
    throw new InputError(
      file,
      'header',
      `header length ${headerBytes} runs past the end of the ${size}-byte file (truncated?)`,
    );
  }
  const json = new Uint8Array(headerBytes);
  readFully(fd, file, json, 8);
  const dataStart = 8 + headerBytes;
  const header = parseSafetensorsHeader(file, json, size - dataStart);
  return { header, dataStart };
}

/** Opens `file` and validates its header; tensors are read lazily. Call close() when done. */
export function openSafetensors(file: string): SafetensorsFile {
  checkRegularFile(file);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(file, 'file', code === 'ENOENT' ? 'not found' : `cannot be opened (${code})`);
  }
  try {
    const { header, dataStart } = readHeader(fd, file);
    return new SafetensorsFileImpl(file, fd, header.tensors, header.metadata, dataStart);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

class SafetensorsFileImpl implements SafetensorsFile {
  constructor(
    readonly path: string,
    private fd: number,
    private tensors: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
    private dataStart: number,
  ) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const { dtype, shape } = this.entry(name);
    return { dtype, shape: [...shape] };
  }

  readRaw(name: string): Uint8Array {
    const t = this.entry(name);
    const out = new Uint8Array(t.end - t.begin);
    readFully(this.fd, this.path, out, this.dataStart + t.begin);
    return out;
  }

  readF32(name: string): Float32Array {
    const t = this.entry(name);
    switch (t.dtype) {
      case 'F32': {
        const out = new Float32Array((t.end - t.begin) / 4);
        readFully(this.fd, this.path, new Uint8Array(out.buffer), this.dataStart + t.begin);
        return out;
      }
      case 'F16':
        return f16ToF32Array(new Uint16Array(this.readRaw(name).buffer));
      case 'BF16':
        return bf16ToF32Array(new Uint16Array(this.readRaw(name).buffer));
      case 'F64':
        return Float32Array.from(new Float64Array(this.readRaw(name).buffer));
      default:
        throw new InputError(this.path, name, `dtype ${t.dtype} is not a float type (expected F32, F16, BF16 or F64)`);
    }
  }

  readFiniteF32(name: string): Float32Array {
    return checkFinite(this.path, name, this.readF32(name));
  }

  readInt32(name: string): Int32Array {
    const t = this.entry(name);
    if (t.dtype === 'I32') return new Int32Array(this.readRaw(name).buffer);
    if (t.dtype !== 'I64')
      throw new InputError(this.path, name, `dtype ${t.dtype} is not an integer type (expected I32 or I64)`);
    const wide = new BigInt64Array(this.readRaw(name).buffer);
    const out = new Int32Array(wide.length);
    for (let i = 0; i < wide.length; i++) {
      const v = wide[i];
      if (v < -2147483648n || v > 2147483647n) {
        throw new InputError(this.path, name, `I64 value ${v} at index ${i} does not fit in int32`);
      }
      out[i] = Number(v);
    }
    return out;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private entry(name: string): TensorEntry {
    const t = this.tensors.get(name);
    if (!t) throw new InputError(this.path, name, 'no such tensor in this file');
    return t;
  }
}
