/**
 * A packed checkpoint exported as a plain Hugging Face checkpoint (`wct export --format hf`): one
 * model.safetensors holding, for every packed module (quantized linear, packed embedding table) `<name>`,
 * `<name>.weight` [out, in] = Ŵ (packed part + weak columns + outliers, src/native/packed.ts dequantize) rounded
 * to nearest even in the chosen 16-bit dtype; every other stored tensor (norms, biases, unpacked embeddings) byte
 * for byte in its stored dtype. config.json is copied without any `quantization_config` key, the tokenizer and
 * generation files unchanged, and quantization_config.json is not written. The directory is written atomically
 * (src/io/checkpoint-write.ts writeDirAtomic).
 */
import fs from 'node:fs';
import path from 'node:path';
import { OptionError } from '../errors.js';
import { dequantize, type PackedWeight } from '../native/packed.js';
import { SINGLE_FILE } from '../io/checkpoint.js';
import { copyModelFiles, storedTensors, writeDirAtomic } from '../io/checkpoint-write.js';
import { f32ToBf16Array, f32ToF16Array } from '../io/dtype.js';
import { readJsonObject } from '../io/json-file.js';
import { packedTensorNames } from '../io/packed-checkpoint.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-write.js';

/** The dtypes an export writes Ŵ in. */
export const EXPORT_DTYPES = ['F16', 'BF16'] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];

/** The largest finite fp16 value: Ŵ beyond it would be written as inf. */
const F16_MAX = 65504;

/** Ŵ of `w` (module `name`) as `<name>.weight` in `dtype`; an fp16 overflow is refused (BF16 has fp32's range). */
export function dequantizedTensor(name: string, w: PackedWeight, dtype: ExportDtype): TensorToWrite {
  const W = dequantize(w);
  if (dtype === 'F16') {
    const i = W.findIndex((v) => !(Math.abs(v) < F16_MAX + 16)); // 65520 and above round to inf
    if (i >= 0) {
      throw new OptionError(
        '--dtype',
        `${name}.weight element ${i} (row ${Math.floor(i / w.cols)}, column ${i % w.cols}) is ${W[i]}, beyond fp16's range: export with --dtype BF16`,
      );
    }
  }
  return {
    name: `${name}.weight`,
    dtype,
    shape: [w.rows, w.cols],
    data: dtype === 'F16' ? f32ToF16Array(W) : f32ToBf16Array(W),
  };
}

/**
 * Copies `sourceDir`'s model files into `destDir`, config.json with its `quantization_config` key replaced by
 * `quantization` (that of the exported format), or removed when it is undefined.
 */
export function copyModelFilesQuantizedAs(sourceDir: string, destDir: string, quantization?: object): void {
  copyModelFiles(sourceDir, destDir);
  const config = path.join(sourceDir, 'config.json');
  if (!fs.existsSync(config)) return;
  const raw = readJsonObject(config);
  if (!('quantization_config' in raw) && quantization === undefined) return;
  delete raw.quantization_config;
  if (quantization !== undefined) raw.quantization_config = quantization;
  fs.writeFileSync(path.join(destDir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
}

/** Every tensor of the packed checkpoint `packedDir` but the packed tensors of `packed`'s modules, byte for byte. */
export function unpackedTensors(packedDir: string, packed: ReadonlyMap<string, PackedWeight>): TensorToWrite[] {
  const replaced = new Set([...packed.keys()].flatMap(packedTensorNames));
  return storedTensors(packedDir, (names) => names.filter((n) => !replaced.has(n)));
}

/**
 * Writes the export of the packed checkpoint `packedDir` into `outDir` (replaced atomically, marked as written by
 * `writtenBy`): `packed` holds every packed module's weight by module name (with any tuned weak columns and
 * outliers already loaded over it). Returns the number of weights dequantized.
 */
export function writeExportedHf(
  outDir: string,
  packedDir: string,
  packed: ReadonlyMap<string, PackedWeight>,
  dtype: ExportDtype,
  writtenBy?: string,
): number {
  return writeDirAtomic(
    outDir,
    (tmp) => {
      copyModelFilesQuantizedAs(packedDir, tmp);
      const tensors = unpackedTensors(packedDir, packed);
      for (const [name, w] of packed) tensors.push(dequantizedTensor(name, w, dtype));
      writeSafetensors(path.join(tmp, SINGLE_FILE), tensors, { format: 'pt' });
      return packed.size;
    },
    writtenBy,
  );
}
