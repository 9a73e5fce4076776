/**
 * TensorBoard event files: the masked CRC32C of the standard check vector, a whole file compared with
 * bytes built by hand (hex computed outside this code: a bitwise CRC32C in Python, struct.pack for the
 * proto fields), write/read round trips, and the InputError naming the record for each kind of damage.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { EventWriter, FILE_VERSION, maskedCrc32c, readEventFile } from '../../src/io/tfevents.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-tfevents-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpDir = () => path.join(tmp, `d${counter++}`);

describe('maskedCrc32c', () => {
  it('masks CRC32C("123456789") = 0xe3069283 as rotr15 + 0xa282ead8', () => {
    // rotr15(0xe3069283) = 0x25073c0d; + 0xa282ead8 = 0xc78ab0e5 (mod 2^32).
    expect(maskedCrc32c(Buffer.from('123456789'))).toBe(0xc78ab0e5);
  });
});

describe('EventWriter', () => {
  it('writes the bytes TFRecord framing and event.proto prescribe', () => {
    const w = new EventWriter(tmpDir(), 1_700_000_000);
    w.addScalar('a', 0.25, 7, 1.5);
    w.close();
    // Record 0: Event{wall_time: 1.7e9 (09 + f64), file_version: "brain.Event:2" (1a 0d ...)}, 24 bytes.
    const header =
      '1800000000000000' +
      'a37f4b22' +
      '09' +
      '00000040fc54d941' +
      '1a0d' +
      Buffer.from('brain.Event:2').toString('hex') +
      'eced8f9d';
    // Record 1: Event{wall_time: 1.5, step: 7 (10 07), summary (2a 0a): Value (0a 08){tag "a" (0a 01 61),
    // simple_value 0.25f (15 0000803e)}}, 23 bytes.
    const scalar =
      '1700000000000000' +
      'e7cef81e' +
      '09000000000000f83f' +
      '1007' +
      '2a0a' +
      '0a08' +
      '0a0161' +
      '150000803e' +
      '9fe3bbbc';
    expect(fs.readFileSync(w.file).toString('hex')).toBe(header + scalar);
  });

  it('names the file events.out.tfevents.<seconds>.<host>.<pid>, and never reuses a name', () => {
    const dir = tmpDir();
    const a = new EventWriter(dir, 1_700_000_000.9);
    const b = new EventWriter(dir, 1_700_000_000.2);
    a.close();
    b.close();
    expect(path.basename(a.file)).toBe(`events.out.tfevents.1700000000.${os.hostname()}.${process.pid}`);
    expect(b.file).toBe(`${a.file}.1`);
  });

  it('round-trips scalars as float32 with their tags and steps, file_version first', () => {
    const w = new EventWriter(tmpDir());
    const values = [0, 1 / 3, -2.5e-7, 1e30, Math.PI];
    values.forEach((v, i) => w.addScalar(i % 2 ? 'train/loss' : 'val/loss', v, 10 * i, 100 + i));
    w.flush();
    w.addScalar('train/lr', 3e-4, 2 ** 40, 200);
    w.close();

    const recs = readEventFile(w.file);
    expect(recs).toHaveLength(values.length + 2);
    expect(recs[0].fileVersion).toBe(FILE_VERSION);
    expect(recs[0].scalars).toEqual([]);
    expect(Math.abs(recs[0].wallTime - Date.now() / 1000)).toBeLessThan(60);
    values.forEach((v, i) => {
      expect(recs[i + 1]).toEqual({
        wallTime: 100 + i,
        step: 10 * i,
        scalars: [{ tag: i % 2 ? 'train/loss' : 'val/loss', value: Math.fround(v) }],
      });
    });
    expect(recs.at(-1)).toEqual({
      wallTime: 200,
      step: 2 ** 40,
      scalars: [{ tag: 'train/lr', value: Math.fround(3e-4) }],
    });
  });

  it('rejects a step that is not a non-negative integer', () => {
    const w = new EventWriter(tmpDir());
    expect(() => w.addScalar('x', 1, 1.5)).toThrow(/step 1.5/);
    expect(() => w.addScalar('x', 1, -1)).toThrow(/step -1/);
    w.close();
  });
});

describe('readEventFile on damaged files', () => {
  /** A file of records 0 (file_version), 1, 2, 3 and the byte offset where each record starts. */
  function threeScalars(): { file: string; starts: number[] } {
    const w = new EventWriter(tmpDir(), 1000);
    for (let i = 0; i < 3; i++) w.addScalar('loss', i, i, 1000 + i);
    w.close();
    const bytes = fs.readFileSync(w.file);
    const starts: number[] = [];
    for (let off = 0; off < bytes.length; off += 16 + Number(bytes.readBigUInt64LE(off))) starts.push(off);
    expect(starts).toHaveLength(4);
    return { file: w.file, starts };
  }

  function damaged(edit: (bytes: Buffer, starts: number[]) => Buffer): string {
    const { file, starts } = threeScalars();
    fs.writeFileSync(file, edit(fs.readFileSync(file), starts));
    return file;
  }

  const readError = (file: string) => {
    try {
      readEventFile(file);
    } catch (e) {
      return e as InputError;
    }
    throw new Error('expected readEventFile to throw');
  };

  it('names the record whose data CRC fails when one data byte flips', () => {
    const file = damaged((b, starts) => {
      b[starts[2] + 12 + 3] ^= 0x01;
      return b;
    });
    const err = readError(file);
    expect(err).toBeInstanceOf(InputError);
    expect(err.file).toBe(file);
    expect(err.where).toBe('record 2');
    expect(err.message).toMatch(/data CRC mismatch/);
  });

  it('names the record whose length CRC fails when a length byte flips', () => {
    const err = readError(
      damaged((b, starts) => {
        b[starts[3]] ^= 0x40;
        return b;
      }),
    );
    expect(err.where).toBe('record 3');
    expect(err.message).toMatch(/length CRC mismatch/);
  });

  it('names the record cut short by truncation, header or data', () => {
    const midData = readError(damaged((b, starts) => b.subarray(0, starts[3] + 20)));
    expect([midData.where, midData.message]).toEqual(['record 3', expect.stringMatching(/runs past the end/)]);
    const midHeader = readError(damaged((b, starts) => b.subarray(0, starts[1] + 5)));
    expect([midHeader.where, midHeader.message]).toEqual(['record 1', expect.stringMatching(/truncated header/)]);
  });
});
