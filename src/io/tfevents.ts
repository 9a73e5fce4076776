/**
 * TensorBoard event files: scalars written by the trainer, and a reader for tests and users.
 *
 * A file `events.out.tfevents.<unix seconds>.<hostname>.<pid>` is a sequence of TFRecords:
 *
 *   uint64 LE  length of data
 *   uint32 LE  maskedCrc32c(the 8 length bytes)
 *   bytes      data: one serialized Event
 *   uint32 LE  maskedCrc32c(data)
 *
 * where maskedCrc32c(b) = rotr15(crc32c(b)) + 0xa282ead8 (mod 2^32), TFRecord's guard against CRCs of
 * data that itself holds CRCs. The first record is an Event carrying only wall_time and
 * file_version "brain.Event:2"; each later one carries one scalar.
 *
 * Protos (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto), the fields used:
 *   Event   { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; Summary summary = 5; } }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; oneof value { float simple_value = 2; } }
 * simple_value sits in a oneof, as in TensorFlow, so a value of 0 is still written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import CRC32C from 'crc-32/crc32c.js';
import protobuf from 'protobufjs';
import { InputError, namingFile } from '../errors.js';
import { makeDir } from './make-dir.js';

const PROTO = `
syntax = "proto3";
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what { string file_version = 3; Summary summary = 5; }
}
message Summary { repeated Value value = 1; }
message Value { string tag = 1; oneof value { float simple_value = 2; } }
`;
const EventProto = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('Event');

export const FILE_VERSION = 'brain.Event:2';

/** TFRecord's masked CRC32C of `bytes`, as an unsigned 32-bit number. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = CRC32C.buf(bytes) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, `data`, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/**
 * Appends scalars to a new event file in `dir`. Records are buffered by addScalar and written, without
 * fsync, by flush(); a killed process loses at most the unflushed records, never the framing of earlier ones.
 */
export class EventWriter {
  readonly file: string;
  private fd: number | null;
  private pending: Buffer[] = [];

  constructor(dir: string, wallTime = Date.now() / 1000) {
    makeDir(dir);
    const base = path.join(dir, `events.out.tfevents.${Math.floor(wallTime)}.${os.hostname()}.${process.pid}`);
    [this.fd, this.file] = openNew(base);
    this.pending.push(encodeEvent({ wall_time: wallTime, file_version: FILE_VERSION }));
    this.flush();
  }

  /** Queues one scalar; `step` must be a non-negative safe integer. Call flush() to write. */
  addScalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    if (this.fd === null) throw new Error(`EventWriter ${this.file}: addScalar after close`);
    if (!Number.isSafeInteger(step) || step < 0)
      throw new Error(`EventWriter: step ${step} is not a non-negative integer`);
    this.pending.push(encodeEvent({ wall_time: wallTime, step, summary: { value: [{ tag, simple_value: value }] } }));
  }

  /** Writes the queued records with one append. */
  flush(): void {
    if (this.fd === null || this.pending.length === 0) return;
    const bytes = Buffer.concat(this.pending);
    this.pending = [];
    const fd = this.fd;
    namingFile(this.file, () => {
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off);
    });
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Opens `base`, or `base.1`, `base.2`, ... when two writers start in one second in one process. */
function openNew(base: string): [number, string] {
  for (let n = 0; ; n++) {
    const file = n === 0 ? base : `${base}.${n}`;
    try {
      return [fs.openSync(file, 'ax'), file];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function encodeEvent(event: object): Buffer {
  return tfRecord(EventProto.encode(EventProto.fromObject(event)).finish());
}

export interface EventRecord {
  wallTime: number;
  step: number;
  fileVersion?: string;
  /** The summary values that hold a simple_value (as float32); other kinds of value are skipped. */
  scalars: { tag: string; value: number }[];
}

interface DecodedEvent {
  wall_time?: number;
  step?: number;
  file_version?: string;
  summary?: { value?: { tag?: string; simple_value?: number }[] };
}

/**
 * Every record of an event file, in order; record N of the file is element N (the first, N = 0, is the
 * file_version event). Throws InputError(file, `record N`, ...) on a truncated record, a CRC mismatch,
 * or data that is not an Event.
 */
export function readEventFile(file: string): EventRecord[] {
  const bytes = fs.readFileSync(file);
  const out: EventRecord[] = [];
  for (let off = 0; off < bytes.length; ) {
    const where = `record ${out.length}`;
    const bad = (what: string) => new InputError(file, where, `${what} (at byte ${off})`);
    if (off + 12 > bytes.length) throw bad(`truncated header: ${bytes.length - off} bytes left, need 12`);
    const lengthCrc = maskedCrc32c(bytes.subarray(off, off + 8));
    if (bytes.readUInt32LE(off + 8) !== lengthCrc)
      throw bad(crcMismatch('length', bytes.readUInt32LE(off + 8), lengthCrc));
    const length = bytes.readBigUInt64LE(off);
    if (length > BigInt(bytes.length - off - 16)) throw bad(`length ${length} runs past the end of the file`);
    const data = bytes.subarray(off + 12, off + 12 + Number(length));
    const dataCrc = maskedCrc32c(data);
    const stored = bytes.readUInt32LE(off + 12 + data.length);
    if (stored !== dataCrc) throw bad(crcMismatch('data', stored, dataCrc));
    let ev: DecodedEvent;
    try {
      ev = EventProto.toObject(EventProto.decode(data), { longs: Number }) as DecodedEvent;
    } catch (e) {
      throw bad(`not an Event proto: ${(e as Error).message}`);
    }
    const scalars = (ev.summary?.value ?? [])
      .filter((v) => v.simple_value !== undefined)
      .map((v) => ({ tag: v.tag ?? '', value: v.simple_value as number }));
    const rec: EventRecord = { wallTime: ev.wall_time ?? 0, step: ev.step ?? 0, scalars };
    if (ev.file_version !== undefined) rec.fileVersion = ev.file_version;
    out.push(rec);
    off += 16 + data.length;
  }
  return out;
}

function crcMismatch(what: string, stored: number, computed: number): string {
  const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
  return `${what} CRC mismatch: stored ${hex(stored)}, computed ${hex(computed)}`;
}
