/**
 * What a `wct quantize` run has finished so far, kept beside its output directory in `<out>.partial/` so that a
 * crash loses at most the block in flight and `--resume` continues from the last finished block:
 *   state.json              {"key": the run's identity (sha256), "blocks_done": k, "blocks": [each one's timings]}
 *   block-<i>.safetensors   block i as the output stores it (packed linears, norms, biases in the source's dtypes);
 *                           its metadata: the linears' summary (what quantization_config.json reports) and the
 *                           transform's record
 *   inputs-<k>.safetensors  the inputs of block k (block k-1's outputs, as the pipeline holds them: F32 or BF16),
 *                           batch.<j> [B, T, C]; absent without calibration and after the last block
 * Each file is written atomically (temporary name, then rename) and a block's part and inputs before state.json
 * counts it: state.json never counts a block whose files are not whole. The key hashes the source checkpoint (its
 * config.json, and each safetensors file's name, size and mtime), the options and the calibration windows: resuming
 * a state of another model, options or calibration is refused. The directory is the run's own (under its output
 * lock) and is removed once the packed checkpoint is written.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { InputError, OptionError } from '../errors.js';
import { readJsonObject } from '../io/json-file.js';
import { openSafetensors, type SafetensorsFile } from '../io/safetensors-read.js';
import { writeSafetensors, type TensorToCopy, type TensorToWrite } from '../io/safetensors-write.js';
import { removeStaleTemps } from '../io/stale-temps.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { StoredBatch } from './linear-inputs.js';

/** What a run does with a partial state it finds: refuse to start (naming --resume and --force), continue it, or
 * discard it and start over. */
export type PartialMode = 'refuse' | 'resume' | 'restart';

const STATE_FILE = 'state.json';
const partFile = (block: number) => `block-${block}.safetensors`;
const inputsFile = (block: number) => `inputs-${block}.safetensors`;

/** The partial-state directory of output directory `outDir`. */
export function partialDirOf(outDir: string): string {
  return `${outDir.replace(/\/+$/, '')}.partial`;
}

/** The identity of a run: the source checkpoint's files, the options and the calibration windows (sha256, hex). */
export function runKey(modelDir: string, options: object, windows: readonly Int32Array[]): string {
  const hash = createHash('sha256');
  hash.update(fs.readFileSync(path.join(modelDir, 'config.json')));
  for (const name of fs.readdirSync(modelDir).sort()) {
    if (!name.endsWith('.safetensors') && !name.endsWith('.safetensors.index.json')) continue;
    const st = fs.statSync(path.join(modelDir, name));
    hash.update(`\n${name} ${st.size} ${st.mtimeMs}`);
  }
  hash.update(`\n${JSON.stringify(options)}\n`);
  for (const w of windows) hash.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  return hash.digest('hex');
}

/** A finished block's metadata as its part file keeps it. */
export interface PartMeta {
  /** JSON texts. */
  linears: string;
  transform: string;
}

interface State {
  key: string;
  blocks_done: number;
  blocks: object[];
}

/** Reads and checks state.json (one line naming the file and field when it is not what this module writes). */
function readState(file: string): State {
  const raw = readJsonObject(file);
  if (typeof raw.key !== 'string') throw new InputError(file, 'key', 'expected the run key (a sha256 hex string)');
  const done = raw.blocks_done;
  if (!(Number.isInteger(done) && (done as number) >= 0))
    throw new InputError(file, 'blocks_done', `expected a non-negative integer, got ${JSON.stringify(done)}`);
  if (!Array.isArray(raw.blocks) || raw.blocks.length !== done)
    throw new InputError(file, 'blocks', `expected the timings of the ${done} finished blocks`);
  return raw as unknown as State;
}

export class PartialRun {
  private constructor(
    readonly dir: string,
    private readonly key: string,
    /** Blocks finished (0..done-1 have parts). */
    public done: number,
    /** Each finished block's timings. */
    readonly reports: object[],
  ) {}

  /**
   * The partial state of `outDir` for the run `key`: a fresh one, or (mode resume) the one found, which must have
   * the same key. Mode refuse throws when a state exists; restart discards it.
   */
  static open(outDir: string, key: string, mode: PartialMode): PartialRun {
    const dir = partialDirOf(outDir);
    const exists = fs.existsSync(path.join(dir, STATE_FILE));
    if (exists && mode === 'refuse')
      throw new OptionError(
        'resume',
        `${dir} holds the blocks of an interrupted run: pass --resume to continue it, or --force to start over`,
      );
    if (exists && mode === 'resume') {
      removeStaleTemps(dir);
      const state = readState(path.join(dir, STATE_FILE));
      if (state.key !== key)
        throw new OptionError(
          'resume',
          `${dir} was left by a run of another model, options or calibration: rerun without --resume (with --force) to start over`,
        );
      return new PartialRun(dir, key, state.blocks_done, state.blocks);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const run = new PartialRun(dir, key, 0, []);
    run.writeState();
    return run;
  }

  private writeState(): void {
    const state: State = { key: this.key, blocks_done: this.done, blocks: this.reports };
    const text = `${JSON.stringify(state)}\n`;
    writeFileAtomic(path.join(this.dir, STATE_FILE), (fd) => fs.writeSync(fd, text));
  }

  /** Stores block `done` (the next one) and the next block's inputs (null: none); count() then counts it. */
  store(tensors: TensorToWrite[], meta: PartMeta, inputs: StoredBatch[] | null): void {
    writeSafetensors(path.join(this.dir, partFile(this.done)), tensors, { ...meta });
    if (inputs !== null)
      writeSafetensors(
        path.join(this.dir, inputsFile(this.done + 1)),
        inputs.map((b, j) => ({ name: `batch.${j}`, dtype: b.dtype, shape: b.shape, data: b.data })),
      );
  }

  /** Counts the block store() stored, with its timings. */
  count(report: object): void {
    this.reports.push(report);
    this.done += 1;
    this.writeState();
    fs.rmSync(path.join(this.dir, inputsFile(this.done - 1)), { force: true }); // the stored block's own inputs
  }

  /** The metadata of finished block `block`. */
  meta(block: number): PartMeta {
    const f = openSafetensors(path.join(this.dir, partFile(block)));
    try {
      const { linears, transform } = f.metadata;
      return { linears, transform };
    } finally {
      f.close();
    }
  }

  /** The stored inputs of the next block to run (block `done`). */
  inputs(): StoredBatch[] {
    const f = openSafetensors(path.join(this.dir, inputsFile(this.done)));
    try {
      return f.names().map((_, j) => {
        const name = `batch.${j}`;
        const { dtype, shape } = f.info(name);
        const raw = f.readRaw(name);
        const data = dtype === 'BF16' ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2) : f.readF32(name);
        return { dtype: dtype as StoredBatch['dtype'], shape, data };
      });
    } finally {
      f.close();
    }
  }

  /** Every finished block's tensors, to copy one at a time; close() the files after. */
  tensors(): { tensors: TensorToCopy[]; close: () => void } {
    const files: SafetensorsFile[] = [];
    const tensors: TensorToCopy[] = [];
    for (let block = 0; block < this.done; block++) {
      const f = openSafetensors(path.join(this.dir, partFile(block)));
      files.push(f);
      for (const name of f.names()) tensors.push({ name, ...f.info(name), read: () => f.readRaw(name) });
    }
    return { tensors, close: () => files.forEach((f) => f.close()) };
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
