/**
 * Safetensors: writer/reader round trips of every dtype, the HF library's exact bytes (its own
 * test vectors and a byte-identical rewrite of a real checkpoint), one InputError per kind of
 * malformed file, and facts about the real checkpoints in ../shared/data.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DTYPES, bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, type Dtype } from '../../src/io/dtype.js';
import { InputError } from '../../src/errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { dataDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-io-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpFile = () => path.join(tmp, `t${counter++}.safetensors`);

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const bitsOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Writes `tensors` and returns the file's bytes. */
function written(tensors: TensorToWrite[], metadata?: Record<string, string>): Buffer {
  const file = tmpFile();
  writeSafetensors(file, tensors, metadata);
  return fs.readFileSync(file);
}

function headerOf(bytes: Buffer): { n: number; json: string } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { n, json: bytes.subarray(8, 8 + n).toString() };
}

describe('writer + reader round trip', () => {
  const shapes: Record<Dtype, number[]> = {
    F64: [3],
    F32: [2, 3],
    F16: [5],
    BF16: [1, 7],
    I64: [4],
    I32: [3, 1],
    U8: [9],
    I8: [2, 2],
  };

  it('every dtype comes back bit-exactly', () => {
    const tensors = (Object.keys(shapes) as Dtype[]).map((dtype, i) => ({
      name: `t.${dtype}`,
      dtype,
      shape: shapes[dtype],
      data: randomBytes(
        shapes[dtype].reduce((a, b) => a * b, DTYPES[dtype].bytes),
        i + 1,
      ),
    }));
    const file = tmpFile();
    writeSafetensors(file, tensors, { format: 'pt' });
    const st = openSafetensors(file);
    expect(new Set(st.names())).toEqual(new Set(tensors.map((t) => t.name)));
    expect(st.metadata).toEqual({ format: 'pt' });
    for (const t of tensors) {
      expect(st.info(t.name)).toEqual({ dtype: t.dtype, shape: t.shape });
      expect(bitsOf(st.readRaw(t.name))).toEqual(bitsOf(t.data));
    }
    st.close();
  });

  it('typed arrays in, fp32 and int32 out', () => {
    const f32 = new Float32Array([1.5, -0, NaN, Infinity, 3.4e38, 1e-45]);
    const f16 = new Uint16Array([0x3c00, 0x8001, 0x7bff, 0xfc00, 0x7e00]);
    const bf16 = new Uint16Array([0x3f80, 0x0001, 0xff80, 0x7f7f]);
    const f64 = new Float64Array([0.1, -1e300, 2 ** -149]);
    const i64 = new BigInt64Array([0n, -2147483648n, 2147483647n]);
    const i32 = new Int32Array([-7, 0, 2147483647]);
    const file = tmpFile();
    writeSafetensors(file, [
      { name: 'f32', dtype: 'F32', shape: [6], data: f32 },
      { name: 'f16', dtype: 'F16', shape: [5], data: f16 },
      { name: 'bf16', dtype: 'BF16', shape: [4], data: bf16 },
      { name: 'f64', dtype: 'F64', shape: [3], data: f64 },
      { name: 'i64', dtype: 'I64', shape: [3], data: i64 },
      { name: 'i32', dtype: 'I32', shape: [3], data: i32 },
    ]);
    const st = openSafetensors(file);
    expect(bitsOf(st.readF32('f32'))).toEqual(bitsOf(f32));
    expect([...st.readF32('f16')]).toEqual([...f16].map(f16BitsToF32));
    expect([...st.readF32('bf16')]).toEqual([...bf16].map(bf16BitsToF32));
    expect([...st.readF32('f64')]).toEqual([...f64].map(Math.fround));
    expect([...st.readInt32('i64')]).toEqual([0, -2147483648, 2147483647]);
    expect([...st.readInt32('i32')]).toEqual([...i32]);
    expect(() => st.readF32('i32')).toThrow(InputError);
    expect(() => st.readInt32('f32')).toThrow(InputError);
    expect(() => st.info('nope')).toThrow(/nope: no such tensor/);
    st.close();
  });

  it('fp32 data stored as F16 / BF16 on request, rounded to nearest even', () => {
    const x = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -25, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.1]);
    const file = tmpFile();
    writeSafetensors(file, [
      { name: 'h', dtype: 'F16', shape: [7], data: x },
      { name: 'b', dtype: 'BF16', shape: [7], data: x },
    ]);
    const st = openSafetensors(file);
    expect([...new Uint16Array(st.readRaw('h').buffer)]).toEqual([...x].map(f32ToF16Bits));
    expect([...new Uint16Array(st.readRaw('b').buffer)]).toEqual([...x].map(f32ToBf16Bits));
    expect(st.readF32('h')[2]).toBe(Infinity);
    st.close();
  });

  it('an I64 value outside int32 is an InputError naming the tensor', () => {
    const file = tmpFile();
    writeSafetensors(file, [{ name: 'ids', dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n ** 40n]) }]);
    const st = openSafetensors(file);
    expect(() => st.readInt32('ids')).toThrow(/ids: I64 value 1099511627776 at index 1 does not fit in int32/);
    st.close();
  });

  it('rejects data of the wrong type or length (programming errors, not InputError)', () => {
    const file = tmpFile();
    expect(() => writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [2], data: new Int32Array(2) }])).toThrow(
      /needs Float32Array/,
    );
    expect(() => writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }])).toThrow(
      /do not fit/,
    );
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe("writer layout is the HF library's", () => {
  // Test vectors from huggingface/safetensors (safetensors/src/tensor.rs: test_serialization,
  // test_empty, test_serialization_forced_alignement).
  const f32Data = new Float32Array([0, 1, 2, 3, 4, 5]);

  it('matches test_serialization byte for byte', () => {
    expect([...written([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f32Data }])]).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34,
      70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
      111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0,
      64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it('matches test_serialization_forced_alignement (space padding)', () => {
    const bytes = written([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f32Data }]);
    expect([...bytes.subarray(0, 8)]).toEqual([72, 0, 0, 0, 0, 0, 0, 0]);
    expect(bytes.subarray(8, 80).toString()).toBe(
      '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ',
    );
  });

  it('matches test_empty, with and without metadata', () => {
    expect([...written([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect(headerOf(written([], { framework: 'pt' })).json).toBe('{"__metadata__":{"framework":"pt"}}     ');
  });

  it('orders tensors by dtype alignment, then name, contiguously', () => {
    const bytes = written(
      [
        { name: 'b16', dtype: 'F16', shape: [3], data: new Uint16Array(3) },
        { name: 'u8', dtype: 'U8', shape: [3], data: new Uint8Array(3) },
        { name: 'z32', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'a32', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'i64', dtype: 'I64', shape: [1], data: new BigInt64Array(1) },
      ],
      { b: '2', a: '1' },
    );
    const header = JSON.parse(headerOf(bytes).json);
    expect(Object.keys(header)).toEqual(['__metadata__', 'i64', 'a32', 'z32', 'b16', 'u8']);
    expect(Object.keys(header.__metadata__)).toEqual(['a', 'b']);
    expect(
      Object.values(header)
        .slice(1)
        .map((t) => (t as { data_offsets: number[] }).data_offsets),
    ).toEqual([
      [0, 8],
      [8, 12],
      [12, 16],
      [16, 22],
      [22, 25],
    ]);
    expect((8 + headerOf(bytes).n) % 8).toBe(0);
  });

  it('keeps integer-like names and metadata keys in layout / sorted order', () => {
    const bytes = written(
      [
        { name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        { name: '10', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        { name: '2', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      ],
      { z: '', 7: '' },
    );
    expect(headerOf(bytes).json.trimEnd()).toBe(
      '{"__metadata__":{"7":"","z":""},"10":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
        '"2":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}',
    );
  });

  it('rewrites the TinyStories checkpoint byte-identically', () => {
    const original = path.join(dataDir, 'models/tinystories-656k/model.safetensors');
    const st = openSafetensors(original);
    const tensors = st.names().map((name) => ({ ...st.info(name), name, data: st.readRaw(name) }));
    const copy = tmpFile();
    writeSafetensors(copy, tensors.reverse(), st.metadata);
    st.close();
    expect(fs.readFileSync(copy).equals(fs.readFileSync(original))).toBe(true);
  });

  it('replaces the target atomically and leaves no temporary file', () => {
    const file = tmpFile();
    fs.writeFileSync(file, 'old');
    writeSafetensors(file, [{ name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array([7]) }]);
    expect([...openSafetensors(file).readRaw('x')]).toEqual([7]);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('malformed files are InputErrors naming the file and the fault', () => {
  /** A valid two-tensor file whose header JSON is then replaced by `mutate(header)`. */
  function withHeader(mutate: (h: Record<string, Record<string, unknown>>) => unknown): string {
    const file = tmpFile();
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) },
      { name: 'b', dtype: 'F32', shape: [4], data: new Float32Array(4) },
    ]);
    const bytes = fs.readFileSync(file);
    const { n, json } = headerOf(bytes);
    const header = JSON.parse(json);
    const replaced = mutate(header);
    const text = typeof replaced === 'string' ? replaced : JSON.stringify(header);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from(text), bytes.subarray(8 + n)]));
    return file;
  }

  function expectInputError(file: string, pattern: RegExp): void {
    let error: unknown;
    try {
      openSafetensors(file).close();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    const message = (error as InputError).message;
    expect(message.startsWith(`${file}: `)).toBe(true);
    expect(message).not.toContain('\n');
    expect(message).toMatch(pattern);
  }

  it('missing file', () => expectInputError(path.join(tmp, 'none.safetensors'), /file: not found/));

  it('file shorter than 8 bytes', () => {
    const file = tmpFile();
    fs.writeFileSync(file, Buffer.from([1, 2, 3]));
    expectInputError(file, /header: file is 3 bytes, shorter than the 8-byte header length/);
  });

  it('file truncated inside the header', () => {
    const file = withHeader(() => undefined);
    fs.truncateSync(file, 20);
    expectInputError(file, /header: header length \d+ runs past the end of the 20-byte file \(truncated\?\)/);
  });

  it('file truncated inside the data', () => {
    const file = withHeader(() => undefined);
    fs.truncateSync(file, fs.statSync(file).size - 4);
    expectInputError(file, /b: data_offsets \[16,32\] lie outside the data section \(28 bytes; file truncated\?\)/);
  });

  it('header offsets outside the file', () => {
    const file = withHeader((h) => {
      h.b.data_offsets = [1e9, 1e9 + 16];
    });
    expectInputError(file, /b: data_offsets \[1000000000,1000000016\] lie outside the data section/);
  });

  it('overlapping tensors', () => {
    const file = withHeader((h) => {
      h.b.data_offsets = [8, 24];
    });
    expectInputError(file, /b: data_offsets \[8,24\] overlap tensor a \[0,16\]/);
  });

  it('unknown dtype', () => {
    const file = withHeader((h) => {
      h.a.dtype = 'Q4_K';
    });
    expectInputError(file, /a: unknown dtype "Q4_K" \(supported: .*F32.*\)/);
  });

  it('shape x dtype size disagreeing with data_offsets', () => {
    const file = withHeader((h) => {
      h.a.shape = [2, 3];
    });
    expectInputError(file, /a: data_offsets \[0,16\] span 16 bytes but shape \[2,3\] x F32 needs 24/);
  });

  it('malformed shape and offsets', () => {
    expectInputError(
      withHeader((h) => {
        h.a.shape = [2, -2];
      }),
      /a: shape \[2,-2\] is not a list of non-negative integers/,
    );
    expectInputError(
      withHeader((h) => {
        h.a.data_offsets = [16, 0];
      }),
      /a: data_offsets \[16,0\] is not \[begin, end\]/,
    );
  });

  it('absurdly large header length', () => {
    const file = tmpFile();
    const bytes = Buffer.alloc(64);
    bytes.writeBigUInt64LE(2n ** 60n);
    fs.writeFileSync(file, bytes);
    expectInputError(file, /header: header length 1152921504606846976 exceeds the 100000000-byte limit/);
  });

  it('header that is not JSON', () => {
    expectInputError(
      withHeader(() => '{"a": {"dtype": '),
      /header: not valid JSON/,
    );
  });

  it('header that is not an object', () => {
    expectInputError(
      withHeader(() => '[1, 2]'),
      /header: expected a JSON object/,
    );
  });

  it('__metadata__ values must be strings', () => {
    expectInputError(
      withHeader((h) => {
        h.__metadata__ = { step: 3 };
      }),
      /__metadata__\.step: expected a string, got 3/,
    );
  });
});

describe('the strict reader refuses what JSON.parse and a lenient reader accept', () => {
  /** A valid two-tensor file (a [2,2], b [4], F32, no metadata) as bytes. */
  function validBytes(): Buffer {
    return written([
      { name: 'a', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      { name: 'b', dtype: 'F32', shape: [4], data: new Float32Array([5, 6, 7, 8]) },
    ]);
  }

  /** A file of `header` bytes (the length field says exactly them) followed by the valid file's data section. */
  function withRawHeader(header: Buffer | string): string {
    const bytes = validBytes();
    const data = bytes.subarray(8 + headerOf(bytes).n);
    const text = Buffer.from(header);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(text.length));
    const file = tmpFile();
    fs.writeFileSync(file, Buffer.concat([len, text, data]));
    return file;
  }

  /** The valid file's header text with `edit` applied to it. */
  function editedHeader(edit: (json: string) => string): string {
    return withRawHeader(edit(headerOf(validBytes()).json));
  }

  function expectInputError(file: string, pattern: RegExp): void {
    let error: unknown;
    try {
      openSafetensors(file).close();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toMatch(pattern);
    expect((error as InputError).message.startsWith(`${file}: `)).toBe(true);
  }

  it('a header-length field a few bytes short or long does not tile the data section', () => {
    // {"__metadata__":{"format":"pt"},...} is 1 byte short of a multiple of 8: one padding space
    const bytes = written(
      [
        { name: 'a', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
        { name: 'b', dtype: 'F32', shape: [4], data: new Float32Array([5, 6, 7, 8]) },
      ],
      { format: 'pt' },
    );
    const { n, json } = headerOf(bytes);
    expect(json.endsWith('} ')).toBe(true);
    const withLength = (length: number) => {
      const copy = Buffer.from(bytes);
      copy.writeBigUInt64LE(BigInt(length));
      const file = tmpFile();
      fs.writeFileSync(file, copy);
      return file;
    };
    // one short: the padding space is dropped and the JSON still parses; the data section gains a byte
    expectInputError(withLength(n - 1), /header: the tensors end at byte 32 of the 33-byte data section/);
    // one long: the first data byte (0x00 of 1.0f) becomes padding
    expectInputError(withLength(n + 1), /header: has whitespace other than trailing spaces|header: not valid JSON/);
    for (const k of [-8, -2, 2, 8]) expectInputError(withLength(n + k), /header: /);
  });

  it('a header length below 2', () => {
    const file = tmpFile();
    fs.writeFileSync(file, Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{')]));
    expectInputError(file, /header: header length 1 is too short/);
  });

  it('bytes after the last tensor, and gaps between tensors', () => {
    const file = tmpFile();
    fs.writeFileSync(file, Buffer.concat([validBytes(), Buffer.from([0, 0, 0, 0])]));
    expectInputError(file, /header: the tensors end at byte 32 of the 36-byte data section/);
    expectInputError(
      editedHeader((j) => j.replace('"shape":[4],"data_offsets":[16,32]', '"shape":[3],"data_offsets":[20,32]')),
      /tensor b: data_offsets \[20,32\] leave bytes \[16,20\) of the data section unused/,
    );
  });

  it('a UTF-8 byte-order mark, invalid UTF-8, and padding other than spaces', () => {
    const json = headerOf(validBytes()).json.trimEnd();
    expectInputError(
      withRawHeader(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)])),
      /header: starts with a UTF-8 byte-order mark/,
    );
    expectInputError(withRawHeader(Buffer.from(json.replace('"a"', '"\xff"'), 'latin1')), /header: is not valid UTF-8/);
    for (const pad of ['\n', '\t', '\0', '\r\n', ' \n '])
      expectInputError(withRawHeader(json + pad), /header: (has whitespace other than trailing spaces|not valid JSON)/);
    expectInputError(withRawHeader(` ${json}`), /header: has whitespace other than trailing spaces/);
  });

  it('duplicate keys: a tensor, a field of an entry, __metadata__ and a metadata key', () => {
    expectInputError(
      editedHeader((j) => j.replace('{"a":', '{"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]},"a":')),
      /tensor b: appears twice/,
    );
    expectInputError(
      editedHeader((j) => j.replace('{"dtype":"F32","shape":[2,2]', '{"dtype":"F32","shape":[2,2],"shape":[2,2]')),
      /tensor a: shape: appears twice/,
    );
    expectInputError(
      editedHeader((j) => j.replace('"a":{"dtype"', '"a":{"dt\\u0079pe":"I8","dtype"')),
      /tensor a: dtype: appears twice/,
    );
    expectInputError(
      editedHeader((j) => j.replace('{"a":', '{"__metadata__":{"k":"1","k":"2"},"a":')),
      /__metadata__: k: appears twice/,
    );
    expectInputError(
      editedHeader((j) => j.replace('{"a":', '{"__metadata__":{},"__metadata__":{},"a":')),
      /__metadata__: appears twice/,
    );
  });

  it('offsets and dims written as floats, exponents or -0', () => {
    expectInputError(
      editedHeader((j) => j.replace('[16,32]', '[16.0,32]')),
      /tensor b: data_offsets\[0\]: 16\.0 is not written as a non-negative integer/,
    );
    expectInputError(
      editedHeader((j) => j.replace('[16,32]', '[16,3.2e1]')),
      /tensor b: data_offsets\[1\]: 3\.2e1 is not written/,
    );
    expectInputError(
      editedHeader((j) => j.replace('[0,16]', '[-0,16]')),
      /tensor a: data_offsets\[0\]: -0 is not written/,
    );
    expectInputError(
      editedHeader((j) => j.replace('[2,2]', '[2,2E0]')),
      /tensor a: shape\[1\]: 2E0 is not written/,
    );
  });

  it('a FIFO in place of the file fails at once instead of blocking', () => {
    const fifo = path.join(tmp, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    expectInputError(fifo, /fifo\.safetensors: not a regular file \(a FIFO\)/);
    expectInputError(tmp, /not a regular file \(a directory\)/);
  });

  it('a symbolic link to a regular file is read', () => {
    const target = tmpFile();
    fs.writeFileSync(target, validBytes());
    const link = path.join(tmp, 'link.safetensors');
    fs.symlinkSync(target, link);
    const st = openSafetensors(link);
    expect([...st.readF32('b')]).toEqual([5, 6, 7, 8]);
    st.close();
  });

  it('zero-size tensors tile anywhere their offset is', () => {
    const bytes = written([
      { name: 'e', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      { name: 'x', dtype: 'U8', shape: [2], data: new Uint8Array([1, 2]) },
    ]);
    const file = tmpFile();
    fs.writeFileSync(file, bytes);
    const st = openSafetensors(file);
    expect(st.info('e').shape).toEqual([0, 3]);
    st.close();
  });

  it('readFiniteF32 names the tensor, the first non-finite element and its value', () => {
    const file = tmpFile();
    writeSafetensors(file, [
      { name: 'w', dtype: 'F32', shape: [5], data: new Float32Array([1, 2, NaN, Infinity, 0]) },
      { name: 'h', dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0x3c00, 0xfc00]) },
      { name: 'ok', dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0x0001]) },
    ]);
    const st = openSafetensors(file);
    expect(() => st.readFiniteF32('w')).toThrow(`${file}: tensor w: element 2 is NaN (stored values must be finite)`);
    expect(() => st.readFiniteF32('h')).toThrow(/tensor h: element 2 is -Infinity/);
    expect(st.readFiniteF32('ok')[0]).toBe(1);
    expect(st.readF32('w')[3]).toBe(Infinity); // the plain read leaves values alone
    st.close();
  });
});

describe('real checkpoints', () => {
  it('TinyStories-656K (F32): names, shapes from config.json, finite values', () => {
    const dir = path.join(dataDir, 'models/tinystories-656k');
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const st = openSafetensors(path.join(dir, 'model.safetensors'));
    const headDim = cfg.hidden_size / cfg.num_attention_heads;
    expect(st.names()).toHaveLength(2 + 9 * cfg.num_hidden_layers);
    expect(st.metadata).toEqual({ format: 'pt', 'model.embed_tokens.weight': 'lm_head.weight' });
    expect(st.info('lm_head.weight')).toEqual({ dtype: 'F32', shape: [cfg.vocab_size, cfg.hidden_size] });
    expect(st.info('model.layers.1.self_attn.k_proj.weight').shape).toEqual([
      cfg.num_key_value_heads * headDim,
      cfg.hidden_size,
    ]);
    expect(st.info('model.layers.0.mlp.down_proj.weight').shape).toEqual([cfg.hidden_size, cfg.intermediate_size]);
    for (const name of st.names()) {
      const x = st.readF32(name);
      expect(x.every(Number.isFinite)).toBe(true);
      expect(x.some((v) => v !== 0)).toBe(true);
    }
    st.close();
  });

  it('opt-tiny-random (F16): names, shapes from config.json, finite values, exact widening', () => {
    const dir = path.join(dataDir, 'models/opt-tiny-random');
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const st = openSafetensors(path.join(dir, 'model.safetensors'));
    expect(st.info('model.decoder.embed_tokens.weight')).toEqual({
      dtype: 'F16',
      shape: [cfg.vocab_size, cfg.word_embed_proj_dim],
    });
    expect(st.info('model.decoder.embed_positions.weight').shape).toEqual([
      cfg.max_position_embeddings + 2,
      cfg.hidden_size,
    ]);
    expect(st.info('model.decoder.layers.1.fc1.weight').shape).toEqual([cfg.ffn_dim, cfg.hidden_size]);
    expect(st.has('lm_head.weight')).toBe(false); // tied
    for (const name of st.names()) {
      const x = st.readF32(name);
      const raw = new Uint16Array(st.readRaw(name).buffer);
      expect(x.every(Number.isFinite)).toBe(true);
      expect(x.every((v, i) => v === f16BitsToF32(raw[i]))).toBe(true);
    }
    st.close();
  });
});
