/**
 * Small packed checkpoints for loader tests: TinyStories-656K quantized with OWQ at 4 bits (weak columns in
 * every linear), from 4 reference calibration windows of 64 tokens; a few seconds.
 */
import path from 'node:path';
import { f16BitsToF32, f32ToF16Bits } from '../../src/io/dtype.js';
import { packedTensors } from '../../src/io/packed-checkpoint.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/models/load.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import type { PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { dataDir, tinyStoriesDir } from './paths.js';

const CALIB_TOKENS = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');

/** Writes the packed checkpoint into `outDir` (which must not exist) and returns it. */
export async function packedTinyStories(outDir: string, groupSize = 0): Promise<string> {
  await quantizeCheckpoint(
    tinyStoriesDir,
    outDir,
    quantizeOptions({
      method: 'owq',
      wbits: 4,
      target_bit: 4.1,
      group_size: groupSize,
      calib_tokens: CALIB_TOKENS,
      nsamples: 4,
      seqlen: 64,
    }),
    { force: false },
  );
  return outDir;
}

/**
 * Gives the packed linear `linear` of the checkpoint in `dir` CSR outliers, in place: in row r the non-weak input
 * columns j = r mod stride, r mod stride + stride, ... leave the packed part (their codes set to the group's zero
 * point) for an outlier of 3 times their dequantized value (rounded to fp16). Returns the weight as written.
 */
export function addOutliers(dir: string, linear: string, stride = 50): PackedWeight {
  const plain = packedLinearsOf(loadModel(dir)).get(linear)!.packed;
  const { rows, cols, groupSize: g } = plain;
  const W = pref.dequantize(plain);
  const codes = pref.unpackCodes(plain.qweight, rows, cols, plain.bits);
  const weak = new Set(plain.weakIdx);
  const groups = Math.ceil(cols / g);
  const packedCol = new Int32Array(cols);
  for (let k = 0; k < cols; k++) packedCol[plain.perm === null ? k : plain.perm[k]] = k;
  const rowPtr = new Int32Array(rows + 1);
  const colIdx: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = r % stride; j < cols; j += stride) {
      if (weak.has(j)) continue;
      const k = packedCol[j];
      codes[r * cols + k] = plain.zeros[r * groups + Math.floor(k / g)];
      colIdx.push(j);
      values.push(f16BitsToF32(f32ToF16Bits(W[r * cols + j] * 3)));
    }
    rowPtr[r + 1] = colIdx.length;
  }
  const w: PackedWeight = {
    ...plain,
    qweight: pref.packCodes(codes, rows, cols, plain.bits),
    outliers: { rowPtr, colIdx: Int32Array.from(colIdx), values: Float32Array.from(values) },
  };
  const file = path.join(dir, 'model.safetensors');
  const st = openSafetensors(file);
  const tensors: TensorToWrite[] = st
    .names()
    .filter((n) => !n.startsWith(`${linear}.`) || n === `${linear}.bias`)
    .map((n) => ({ name: n, ...st.info(n), data: st.readRaw(n) }));
  st.close();
  tensors.push(...packedTensors(linear, w));
  writeSafetensors(file, tensors, { format: 'pt' });
  return w;
}
