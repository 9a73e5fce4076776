/**
 * Property-based fuzzing of the safetensors reader (fast-check, fixed seed, bounded runs): valid small files
 * mutated (flipped bytes, truncation, header length ± k, header text edits, duplicate keys, float offsets,
 * non-finite values) and random JSON headers. Every case must end in an InputError or a valid result: every
 * tensor readable, of the length its shape says, float tensors finite, and the tensors tiling the data
 * section; never another exception and never a hang.
 */
import { endsCleanly } from '../helpers/errors.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DTYPES, type Dtype } from '../../src/io/dtype.js';
import { InputError } from '../../src/errors.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const SEED = 20261202;
const RUNS = 300;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-fuzz-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = path.join(tmp, 'case.safetensors');

const FLOAT: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16', 'F64']);

/** A valid file with one tensor of every dtype (float values finite) and metadata. */
function validFile(): Buffer {
  const src = path.join(tmp, 'valid.safetensors');
  const shapes: [Dtype, number[]][] = [
    ['F32', [2, 3]],
    ['F16', [4]],
    ['BF16', [3, 1]],
    ['F64', [2]],
    ['I64', [2]],
    ['I32', [3]],
    ['U8', [5]],
    ['I8', [0, 4]],
  ];
  writeSafetensors(
    src,
    shapes.map(([dtype, shape], i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data =
        dtype === 'F32' || dtype === 'F16' || dtype === 'BF16'
          ? Float32Array.from({ length: n }, (_, k) => (k + i) / 7)
          : dtype === 'F64'
            ? Float64Array.from({ length: n }, (_, k) => k - 0.5)
            : new Uint8Array(n * DTYPES[dtype].bytes).map((_, k) => (k * 37 + i) & 0x7f);
      return { name: `t${i}.${dtype.toLowerCase()}`, dtype, shape, data };
    }),
    { format: 'pt', note: 'fuzz' },
  );
  return fs.readFileSync(src);
}

const VALID = validFile();
const HEADER_LENGTH = Number(VALID.readBigUInt64LE(0));
const HEADER = VALID.subarray(8, 8 + HEADER_LENGTH).toString('utf8');
const DATA = VALID.subarray(8 + HEADER_LENGTH);

/** A file of `header` text (its exact length in the length field) and `data`. */
function fileOf(header: string, data: Uint8Array = DATA): Buffer {
  const text = Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, data]);
}

/** Reads every tensor of `bytes` (written to a file); throws what the reader throws, checks what it returns. */
function readAll(bytes: Uint8Array): void {
  fs.writeFileSync(file, bytes);
  const st = openSafetensors(file);
  try {
    let total = 0;
    for (const name of st.names()) {
      const { dtype, shape } = st.info(name);
      expect(Object.hasOwn(DTYPES, dtype)).toBe(true);
      expect(shape.every((d) => Number.isSafeInteger(d) && d >= 0)).toBe(true);
      const n = shape.reduce((a, b) => a * b, 1);
      total += n * DTYPES[dtype].bytes;
      if (FLOAT.has(dtype)) {
        const x = st.readFiniteF32(name);
        expect(x.length).toBe(n);
        expect(x.every(Number.isFinite)).toBe(true);
      } else if (dtype === 'I32' || dtype === 'I64') {
        try {
          expect(st.readInt32(name).length).toBe(n);
        } catch (e) {
          if (!(e instanceof InputError && dtype === 'I64')) throw e; // an I64 value outside int32
        }
      } else {
        expect(st.readRaw(name).length).toBe(n * DTYPES[dtype].bytes);
      }
    }
    const headerLength = Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
    expect(total).toBe(bytes.length - 8 - headerLength);
    for (const v of Object.values(st.metadata)) expect(typeof v).toBe('string');
  } finally {
    st.close();
  }
}

/** The property: reading `bytes` ends in an InputError or passes readAll's checks. */
function cleanOutcome(bytes: Uint8Array): boolean {
  return endsCleanly(() => readAll(bytes));
}

const run = (arb: fc.Arbitrary<Uint8Array>) =>
  fc.assert(
    fc.property(arb, (bytes) => cleanOutcome(bytes)),
    { seed: SEED, numRuns: RUNS },
  );

/** For mutations that always make the file invalid: every case must be an InputError. */
const refused = (arb: fc.Arbitrary<Uint8Array>) =>
  fc.assert(
    fc.property(arb, (bytes) => {
      expect(() => readAll(bytes)).toThrow(InputError);
    }),
    { seed: SEED, numRuns: RUNS },
  );

describe('safetensors reader fuzz', () => {
  it('the valid file reads back', () => {
    readAll(VALID);
  });

  it('flipped bytes anywhere', () => {
    run(
      fc
        .array(fc.tuple(fc.nat(VALID.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })
        .map((flips) => {
          const b = Buffer.from(VALID);
          for (const [at, x] of flips) b[at] ^= x;
          return b;
        }),
    );
  });

  it('truncation', () => {
    run(fc.nat(VALID.length - 1).map((n) => VALID.subarray(0, n)));
  });

  it('header length ± k', () => {
    run(
      fc.integer({ min: -40, max: 40 }).map((k) => {
        const b = Buffer.from(VALID);
        b.writeBigUInt64LE(BigInt(Math.max(0, HEADER_LENGTH + k)));
        return b;
      }),
    );
  });

  it('header text edits (replace, insert, delete a character)', () => {
    const chars = fc.constantFrom(...'{}[]",:0123456789.eE-+ \t\n\\ubaFIU_x'.split(''), '\u00e9', '\ufeff');
    const edit = fc.tuple(fc.nat(HEADER.length - 1), fc.constantFrom('replace', 'insert', 'delete'), chars);
    run(
      fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) => {
        let h = HEADER;
        for (const [at, op, c] of edits) {
          const i = Math.min(at, h.length);
          h = h.slice(0, i) + (op === 'delete' ? '' : c) + h.slice(op === 'insert' ? i : i + 1);
        }
        return fileOf(h);
      }),
    );
  });

  it('duplicate keys (a tensor, an entry field, a metadata key)', () => {
    const parsed = JSON.parse(HEADER) as Record<string, Record<string, unknown>>;
    const names = Object.keys(parsed).filter((k) => k !== '__metadata__');
    refused(
      fc
        .tuple(fc.constantFrom(...names), fc.constantFrom('tensor', 'field', 'metadata'), fc.boolean())
        .map(([name, where, first]) => {
          const entry = JSON.stringify(parsed[name]);
          const doubled =
            where === 'tensor'
              ? entry
              : where === 'field'
                ? entry.replace('{', `{"shape":${JSON.stringify(parsed[name].shape)},`)
                : entry;
          let h = HEADER.trimEnd();
          if (where === 'metadata')
            h = h.replace('"format":"pt"', first ? '"format":"pt","format":"x"' : '"format":"pt","note":"y"');
          else if (where === 'tensor')
            h = first
              ? h.replace('{', `{${JSON.stringify(name)}:${doubled},`)
              : `${h.slice(0, -1)},${JSON.stringify(name)}:${doubled}}`;
          else h = h.replace(`${JSON.stringify(name)}:${entry}`, `${JSON.stringify(name)}:${doubled}`);
          return fileOf(h.padEnd(Math.ceil(h.length / 8) * 8));
        }),
    );
  });

  it('offsets and dims rewritten as floats, exponents, negatives or huge numbers', () => {
    const literals = (n: number) => [`${n}.0`, `${n}e0`, `${n / 10}e1`, `-${n}`, `${n}.5`, `${n}00000000000000000000`];
    refused(
      fc.tuple(fc.nat(200), fc.nat(5)).map(([k, form]) => {
        let seen = 0;
        const h = HEADER.replace(/(?<=[[,])\d+(?=[\],])/g, (m) => (seen++ === k % 20 ? literals(Number(m))[form] : m));
        return fileOf(h);
      }),
    );
  });

  it('random JSON headers over a random data section', () => {
    const entry = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom(...Object.keys(DTYPES)), fc.string(), fc.integer()),
        shape: fc.oneof(fc.array(fc.nat(6), { maxLength: 3 }), fc.jsonValue()),
        data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const header = fc.dictionary(
      fc.oneof(fc.string({ maxLength: 6 }), fc.constant('__metadata__')),
      fc.oneof(
        entry,
        fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), fc.jsonValue())),
        fc.jsonValue(),
      ),
      { maxKeys: 5 },
    );
    run(
      fc
        .tuple(fc.oneof(header, fc.jsonValue()), fc.uint8Array({ maxLength: 96 }))
        .map(([h, data]) => fileOf(JSON.stringify(h) ?? 'null', data)),
    );
  });

  it('tiled random headers: contiguous offsets, so the deeper checks are reached', () => {
    const tensor = fc.tuple(
      fc.constantFrom(...(Object.keys(DTYPES) as Dtype[])),
      fc.array(fc.nat(4), { maxLength: 3 }),
    );
    run(
      fc
        .tuple(fc.array(tensor, { maxLength: 5 }), fc.integer({ min: -2, max: 2 }), fc.nat(1000))
        .map(([tensors, slack, seed]) => {
          let at = 0;
          const h: Record<string, unknown> = {};
          tensors.forEach(([dtype, shape], i) => {
            const bytes = shape.reduce((a, b) => a * b, DTYPES[dtype].bytes);
            h[`t${i}`] = { dtype, shape, data_offsets: [at, at + bytes] };
            at += bytes;
          });
          const data = new Uint8Array(Math.max(0, at + slack)).map((_, k) => (k * 131 + seed) & 0xff);
          return fileOf(JSON.stringify(h), data);
        }),
    );
  });

  it('non-finite values written into float tensors', () => {
    const parsed = JSON.parse(HEADER) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    const floats = Object.entries(parsed).filter(([, e]) => FLOAT.has(e.dtype));
    run(
      fc
        .tuple(fc.constantFrom(...floats), fc.nat(100), fc.constantFrom(NaN, Infinity, -Infinity))
        .map(([[, e], k, value]) => {
          const b = Buffer.from(VALID);
          const size = DTYPES[e.dtype as Dtype].bytes;
          const count = (e.data_offsets[1] - e.data_offsets[0]) / size;
          const at = 8 + HEADER_LENGTH + e.data_offsets[0] + (k % count) * size;
          if (e.dtype === 'F32') b.writeFloatLE(value, at);
          else if (e.dtype === 'F64') b.writeDoubleLE(value, at);
          else if (e.dtype === 'F16') b.writeUInt16LE(Number.isNaN(value) ? 0x7e00 : value > 0 ? 0x7c00 : 0xfc00, at);
          else b.writeUInt16LE(Number.isNaN(value) ? 0x7fc0 : value > 0 ? 0x7f80 : 0xff80, at);
          expect(() => readAll(b)).toThrow(/element \d+ is (NaN|Infinity|-Infinity)/);
          return b;
        }),
    );
  });
});
