/**
 * Writing a checkpoint directory made from a source Hugging Face checkpoint (a packed checkpoint, a
 * merged LoRA model): the files carried over unchanged, the dtype each tensor keeps, and the atomic
 * directory write (temporary directory beside the target, renamed into place, so the target is never
 * seen half-written).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { openCheckpoint, SINGLE_FILE } from './checkpoint.js';
import { makeDir } from './make-dir.js';
import { writeMarker } from './output-dir.js';
import { writeSafetensors, type TensorToWrite } from './safetensors-write.js';

/** Looks a canonical tensor name up among a source's stored names (src/models/checkpoint-tensors.ts). */
export type StoredName = (available: ReadonlySet<string>, canonical: string) => string | undefined;

/** Files of the source checkpoint a derived one carries over unchanged (config, generation, tokenizer). */
export const COPIED_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
];

/** Copies the COPIED_FILES that `sourceDir` has into `destDir`, writable by the user. */
export function copyModelFiles(sourceDir: string, destDir: string): void {
  for (const f of COPIED_FILES) {
    if (!fs.existsSync(path.join(sourceDir, f))) continue;
    fs.copyFileSync(path.join(sourceDir, f), path.join(destDir, f));
    fs.chmodSync(path.join(destDir, f), 0o644); // the source may be read-only; the copy is the user's
  }
}

/**
 * `weights` (fp32 tensors by canonical name) as tensors to write, each in the dtype the source
 * checkpoint stores it in: F16 and BF16 stay 16-bit, everything else (F32, F64, a tensor the source
 * lacks) is written F32. Names in `skip` are left out; `storedName` finds each in the source.
 */
export function tensorsInSourceDtypes(
  sourceDir: string,
  weights: ReadonlyMap<string, Tensor>,
  storedName: StoredName,
  skip: ReadonlySet<string> = new Set(),
): TensorToWrite[] {
  const source = openCheckpoint(sourceDir);
  try {
    const available = new Set(source.names());
    const tensors: TensorToWrite[] = [];
    for (const [name, t] of weights) {
      if (skip.has(name)) continue;
      const stored = storedName(available, name);
      const dtype = stored === undefined ? 'F32' : source.info(stored).dtype;
      tensors.push({
        name,
        dtype: dtype === 'F16' || dtype === 'BF16' ? dtype : 'F32',
        shape: [...t.shape],
        data: t.data as Float32Array,
      });
    }
    return tensors;
  } finally {
    source.close();
  }
}

/**
 * Runs `write(tmp)` on a fresh temporary directory beside `outDir`, then replaces `outDir` with it. On
 * failure the temporary directory is removed and `outDir` is left as it was. Whether an existing
 * `outDir` may be replaced is the caller's decision, made before calling (src/io/output-dir.ts). A
 * command's output directory gets the marker of `writtenBy`, the command, before the rename.
 */
export function writeDirAtomic<T>(outDir: string, write: (tmp: string) => T, writtenBy?: string): T {
  const tmp = `${outDir.replace(/\/+$/, '')}.tmp-${process.pid}`;
  makeDir(path.dirname(tmp));
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    const result = write(tmp);
    if (writtenBy !== undefined) writeMarker(tmp, writtenBy);
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.renameSync(tmp, outDir);
    return result;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The tensors of the checkpoint `sourceDir` that `select` picks from its stored names, byte for byte as stored. */
export function storedTensors(sourceDir: string, select: (names: string[]) => string[]): TensorToWrite[] {
  const source = openCheckpoint(sourceDir);
  try {
    return select(source.names()).map((name) => ({ name, ...source.info(name), data: source.readRaw(name) }));
  } finally {
    source.close();
  }
}

/** The source's tensors that no name of `weights` resolves to (a tied lm_head's stored copy, buffers), byte for byte. */
function unheldSourceTensors(
  sourceDir: string,
  weights: ReadonlyMap<string, Tensor>,
  storedName: StoredName,
): TensorToWrite[] {
  return storedTensors(sourceDir, (names) => {
    const available = new Set(names);
    const held = new Set([...weights.keys()].map((n) => storedName(available, n)));
    return names.filter((n) => !held.has(n));
  });
}

/**
 * A full-precision Hugging Face checkpoint directory: `sourceDir`'s config and tokenizer files and one
 * model.safetensors holding every tensor of `weights` in the source's dtypes, plus, unchanged, the source's
 * tensors the model does not hold. Replaces `outDir`, marked as written by `writtenBy`.
 */
export function writeHfCheckpoint(
  outDir: string,
  sourceDir: string,
  weights: ReadonlyMap<string, Tensor>,
  storedName: StoredName,
  writtenBy?: string,
): void {
  writeDirAtomic(
    outDir,
    (tmp) => {
      copyModelFiles(sourceDir, tmp);
      const tensors = [
        ...tensorsInSourceDtypes(sourceDir, weights, storedName),
        ...unheldSourceTensors(sourceDir, weights, storedName),
      ];
      writeSafetensors(path.join(tmp, SINGLE_FILE), tensors, { format: 'pt' });
    },
    writtenBy,
  );
}
