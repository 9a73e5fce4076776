/**
 * Weak-column deltas (docs/ARCHITECTURE.md section 6): the tuned weak columns of every quantized linear, keyed
 * `<linear>.weak` ([out, n_out], F32, in the order of the base's sorted weak_idx), in a small safetensors
 * file whose metadata names the packed base (sha256 of its model.safetensors), the recipe hash and the
 * step. Loaded over the packed base with no merge step; deltas made for another base are refused.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SINGLE_FILE } from './checkpoint.js';
import { InputError, namingFile } from '../errors.js';
import { checkRegularFile } from './input-file.js';
import { openSafetensors } from './safetensors-read.js';
import { writeSafetensors } from './safetensors-write.js';

export const DELTAS_FORMAT = 'wct-weak-deltas';

export interface DeltasMeta {
  baseSha256: string;
  recipeHash: string;
  step: number;
}

/** The weak columns of one linear: data [rows, nOut]. */
export interface WeakColumns {
  rows: number;
  nOut: number;
  data: Float32Array;
}

/** sha256 (hex) of a packed checkpoint directory's model.safetensors, read in chunks. */
export function checkpointSha256(dir: string): string {
  const file = path.join(dir, SINGLE_FILE);
  const hash = createHash('sha256');
  checkRegularFile(file);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 24);
    for (;;) {
      const n = namingFile(file, () => fs.readSync(fd, buf, 0, buf.length, null));
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

export function writeWeakDeltas(file: string, layers: Map<string, WeakColumns>, meta: DeltasMeta): void {
  const tensors = [...layers]
    .filter(([, w]) => w.nOut > 0)
    .map(([name, w]) => ({ name: `${name}.weak`, dtype: 'F32' as const, shape: [w.rows, w.nOut], data: w.data }));
  writeSafetensors(file, tensors, {
    format: DELTAS_FORMAT,
    base_sha256: meta.baseSha256,
    recipe_hash: meta.recipeHash,
    step: String(meta.step),
  });
}

/**
 * Reads deltas made for the packed checkpoint `baseDir` (refusing another base) and returns each layer's
 * weak columns; `expect` gives the [rows, nOut] every layer must have. A tensor for no weak columns of the base
 * is refused, and every value must be finite.
 */
export function readWeakDeltas(
  file: string,
  baseDir: string,
  expect: Map<string, [number, number]>,
): Map<string, Float32Array> {
  const st = openSafetensors(file);
  try {
    if (st.metadata.format !== DELTAS_FORMAT)
      throw new InputError(file, '__metadata__.format', `expected "${DELTAS_FORMAT}" (not a weak-deltas file)`);
    const base = checkpointSha256(baseDir);
    if (st.metadata.base_sha256 !== base) {
      throw new InputError(
        file,
        '__metadata__.base_sha256',
        `made for another base (${st.metadata.base_sha256?.slice(0, 12)}...), ${baseDir} is ${base.slice(0, 12)}...`,
      );
    }
    const unused = st
      .names()
      .filter((t) => !(t.endsWith('.weak') && (expect.get(t.slice(0, -'.weak'.length))?.[1] ?? 0) > 0));
    if (unused.length > 0) {
      const shown = unused.slice(0, 5).join(', ') + (unused.length > 5 ? ` and ${unused.length - 5} more` : '');
      throw new InputError(file, 'tensors', `${unused.length} tensor(s) for no weak columns of the base: ${shown}`);
    }
    const out = new Map<string, Float32Array>();
    for (const [name, [rows, nOut]] of expect) {
      if (nOut === 0) continue;
      const t = `${name}.weak`;
      if (!st.has(t)) throw new InputError(file, t, `missing (expected F32 [${rows},${nOut}])`);
      const info = st.info(t);
      if (info.dtype !== 'F32' || String(info.shape) !== String([rows, nOut])) {
        throw new InputError(
          file,
          t,
          `${info.dtype} [${info.shape}] does not match the base (expected F32 [${rows},${nOut}])`,
        );
      }
      out.set(name, st.readFiniteF32(t));
    }
    return out;
  } finally {
    st.close();
  }
}
