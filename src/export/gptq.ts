/**
 * A packed checkpoint exported in the AutoGPTQ / GPTQModel "gptq" (v1) layout (`wct export --format gptq`), which
 * transformers (GPTQ integration), GPTQModel, AutoGPTQ and vLLM load. Glossary: N out_features, K in_features,
 * b bits, G group size (G = K: per row), gK = K / G groups; every int32 word is a little-endian stream of b-bit
 * fields, 3-bit codes straddling words as GPTQ's pack() lays them (32 codes in 3 words).
 *
 * model.safetensors holds, for every quantized linear `<name>`, in place of its packed tensors:
 *   <name>.qweight  I32 [K*b/32, N]   column n's codes along the input dimension, in INPUT column order: input
 *                                     column j in bits [j*b, (j+1)*b) of column n's stream of words
 *   <name>.qzeros   I32 [gK, N*b/32]  group g's zero points minus one (the v1 convention), along N
 *   <name>.scales   F16 [gK, N]       the packed scales, transposed (each exact in fp16, else refused)
 *   <name>.g_idx    I32 [K]           the group of each input column: with a permutation (act-order, OWQ's
 *                                     reorder) the group of the packed column holding it, floor(k / G) at perm[k]
 * and every other tensor as stored (biases, norms, embeddings). GPTQ's dequantization,
 *   W[n, j] = scales[g_idx[j], n] * (qweight code (n, j) - (qzeros field (g_idx[j], n) + 1)),
 * is then the packed part of Ŵ exactly: the same codes, zero points and fp16 scales. config.json gets GPTQ's
 * `quantization_config` and quantize_config.json holds the same object (AutoGPTQ / GPTQModel read the file;
 * transformers and vLLM the key; `sym: false`: the zero points are asymmetric).
 *
 * An OWQ base's weak columns: their codes hold the zero point, so the GPTQ base dequantizes to exactly 0 there;
 * they become the PEFT LoRA adapter `weak-columns-adapter/` (rank r = the largest n_out of any linear, one rank
 * for all so that every PEFT / vLLM version loads it; lora_alpha = r, so PEFT's scaling alpha / r is 1):
 *   lora_A [r, K]  row i < n_out is the unit row selecting input column weakIdx[i]; rows n_out.. are 0
 *   lora_B [N, r]  column i < n_out is weak[:, i] (fp32, the tuned values when --deltas are given); the rest 0
 * so (B A)[n, j] = weak[n, i] at j = weakIdx[i] and 0 elsewhere (one non-zero product per element), and
 *   x Ŵᵀ = x W_gptqᵀ + (x Aᵀ) Bᵀ
 * exactly in exact arithmetic: x Aᵀ is x gathered at the weak columns (products by 1 and 0), and W_gptq + B A = Ŵ
 * element for element. That is the stored tensors' promise: a runtime computing in fp16 rounds s (q - z) and the
 * products as it does for any GPTQ model, and rounds the adapter to fp16 (vLLM at --dtype float16), which keeps
 * the weak values only where they are exact in fp16 (the packed checkpoint's are; tuned --deltas are fp32). The
 * adapter's base_model_name_or_path is the exported directory.
 *
 * What the layout cannot hold exactly is refused, one line naming the linear (use --format hf for it): GWQ-style
 * sparse outliers, packed embedding tables (GPTQ quantizes the blocks' linears only), a group size that does not
 * divide K, a K or N that the b-bit int32 words do not tile, a scale not exact in fp16, and a zero point of 0,
 * whose v1 field would be -1: AutoGPTQ's pack() spills it over the neighbouring fields and the exllama kernels
 * (vLLM's) read field + 1 unmasked. AWQ bases need no special case: their grid (codes 0..2^b-1, integer zero
 * points, Ŵ = s (q - z)) is the packed format's. Bits: the packed format's 2, 3, 4 and 8 are exactly GPTQ's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OptionError } from '../errors.js';
import { packedGroups, unpackCodes, type PackedWeight } from '../native/packed.js';
import { Tensor } from '../tensor/tensor.js';
import { SINGLE_FILE } from '../io/checkpoint.js';
import { writeDirAtomic } from '../io/checkpoint-write.js';
import { f16BitsToF32, f32ToF16Bits } from '../io/dtype.js';
import { copyModelFilesQuantizedAs, unpackedTensors } from './hf.js';
import { readQuantConfig, type QuantConfig } from '../io/packed-checkpoint.js';
import { type LoraWeights, writeAdapter } from '../io/peft-adapter.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-write.js';

/** What a GPTQ export wrote. */
export interface GptqExport {
  /** Packed linears written as qweight / qzeros / scales / g_idx. */
  linears: number;
  /** The PEFT adapter directory holding an OWQ base's weak columns (rank n_out LoRA), when there were any. */
  adapterDir?: string;
}

/** The file AutoGPTQ and GPTQModel read the quantization settings from. */
const GPTQ_CONFIG_FILE = 'quantize_config.json';
/** The weak columns' adapter directory inside the export. */
const WEAK_ADAPTER_DIR = 'weak-columns-adapter';

const WORD_BITS = 32;

function refuse(name: string, problem: string): never {
  throw new OptionError('--format', `gptq cannot hold ${name} exactly: ${problem} (use --format hf)`);
}

/** How many b-bit fields tile a whole number of int32 words: 32 / gcd(32, b) (32 at 3 bits, 32 / b otherwise). */
function wordTile(bits: number): number {
  let [a, b] = [WORD_BITS, bits];
  while (b !== 0) [a, b] = [b, a % b];
  return WORD_BITS / a;
}

/** Refuses a weight whose structure the layout cannot hold (values are checked as they are written). */
function checkLayout(name: string, w: PackedWeight, embeddings: ReadonlySet<string>): void {
  if (embeddings.has(name))
    refuse(name, 'it is a packed embedding table (GPTQ packs the block linears only: quantize without --embed-bits)');
  const nnz = w.outliers?.colIdx.length ?? 0;
  if (nnz > 0) refuse(name, `it has ${nnz} GWQ-style sparse outliers`);
  if (w.cols % w.groupSize !== 0) refuse(name, `its group size ${w.groupSize} does not divide in_features ${w.cols}`);
  const tile = wordTile(w.bits);
  for (const [what, n] of [
    ['in_features', w.cols],
    ['out_features', w.rows],
  ] as const) {
    if (n % tile !== 0) refuse(name, `${what} ${n} is not a multiple of ${tile} (${w.bits}-bit fields in int32 words)`);
  }
}

/** Sets field `pos` (b bits wide) of the word stream out[offset + word * stride] to `value`. */
function putField(out: Int32Array, offset: number, stride: number, pos: number, bits: number, value: number): void {
  const bit = pos * bits;
  const [word, shift] = [bit >>> 5, bit & 31];
  out[offset + word * stride] |= value << shift;
  if (shift + bits > WORD_BITS) out[offset + (word + 1) * stride] |= value >>> (WORD_BITS - shift);
}

/** g_idx [K]: the group of the packed column holding each input column. */
function gptqGroupIndex(w: PackedWeight): Int32Array {
  const g = new Int32Array(w.cols);
  for (let k = 0; k < w.cols; k++) g[w.perm === null ? k : w.perm[k]] = Math.floor(k / w.groupSize);
  return g;
}

/** qweight I32 [K*b/32, N]: the codes of row n (packed order) at their input columns in word column n. */
function qweightOf(w: PackedWeight): Int32Array {
  const { rows: n, cols: k, bits } = w;
  const codes = unpackCodes(w.qweight, n, k, bits);
  const q = new Int32Array(((k * bits) / WORD_BITS) * n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) putField(q, r, n, w.perm === null ? c : w.perm[c], bits, codes[r * k + c]);
  }
  return q;
}

/** scales F16 [gK, N] and qzeros I32 [gK, N*b/32] (zero - 1), refusing a scale not exact in fp16 and a zero of 0. */
function scalesAndZeros(name: string, w: PackedWeight): { scales: Uint16Array; qzeros: Int32Array } {
  const { rows: n, bits } = w;
  const groups = packedGroups(w.cols, w.groupSize);
  const zeroWords = (n * bits) / WORD_BITS;
  const scales = new Uint16Array(groups * n);
  const qzeros = new Int32Array(groups * zeroWords);
  for (let r = 0; r < n; r++) {
    for (let g = 0; g < groups; g++) {
      const [s, z] = [w.scales[r * groups + g], w.zeros[r * groups + g]];
      const h = f32ToF16Bits(s);
      if (f16BitsToF32(h) !== s) refuse(name, `the scale of row ${r}, group ${g} (${s}) is not exact in fp16`);
      if (z === 0) refuse(name, `row ${r}, group ${g} has zero point 0, which GPTQ's v1 qzeros (zero - 1) cannot hold`);
      scales[g * n + r] = h;
      putField(qzeros, g * zeroWords, 1, r, bits, z - 1);
    }
  }
  return { scales, qzeros };
}

/** The four GPTQ tensors of the linear `name`. */
function gptqTensors(name: string, w: PackedWeight): TensorToWrite[] {
  const groups = packedGroups(w.cols, w.groupSize);
  const { scales, qzeros } = scalesAndZeros(name, w);
  return [
    { name: `${name}.qweight`, dtype: 'I32', shape: [(w.cols * w.bits) / WORD_BITS, w.rows], data: qweightOf(w) },
    { name: `${name}.qzeros`, dtype: 'I32', shape: [groups, (w.rows * w.bits) / WORD_BITS], data: qzeros },
    { name: `${name}.scales`, dtype: 'F16', shape: [groups, w.rows], data: scales },
    { name: `${name}.g_idx`, dtype: 'I32', shape: [w.cols], data: gptqGroupIndex(w) },
  ];
}

/** Whether some linear's g_idx is not the plain floor(j / G) (then loaders must follow g_idx: desc_act). */
function reordered(packed: ReadonlyMap<string, PackedWeight>): boolean {
  return [...packed.values()].some((w) => gptqGroupIndex(w).some((g, j) => g !== Math.floor(j / w.groupSize)));
}

/** GPTQ's quantization settings (config.json `quantization_config` and quantize_config.json), with AutoGPTQ's keys. */
function gptqQuantizationConfig(qc: QuantConfig, descAct: boolean) {
  return {
    quant_method: 'gptq',
    checkpoint_format: 'gptq',
    bits: qc.bits,
    group_size: qc.group_size === 0 ? -1 : qc.group_size,
    desc_act: descAct,
    sym: false,
    static_groups: false,
    true_sequential: qc.true_sequential,
    damp_percent: qc.percdamp,
    lm_head: false,
    model_name_or_path: null,
    model_file_base_name: path.basename(SINGLE_FILE, '.safetensors'),
    meta: { quantizer: ['wct export'], wct_method: qc.method },
  };
}

/** The weak columns of every linear that has them as LoRA A / B of rank `rank` (see the header). */
function weakColumnLora(packed: ReadonlyMap<string, PackedWeight>, rank: number): Map<string, LoraWeights> {
  const layers = new Map<string, LoraWeights>();
  for (const [name, w] of packed) {
    const nOut = w.weakIdx.length;
    if (nOut === 0) continue;
    const a = new Float32Array(rank * w.cols);
    const b = new Float32Array(w.rows * rank);
    w.weakIdx.forEach((j, i) => (a[i * w.cols + j] = 1));
    for (let r = 0; r < w.rows; r++) for (let i = 0; i < nOut; i++) b[r * rank + i] = w.weak[r * nOut + i];
    layers.set(name, { a: new Tensor(a, [rank, w.cols]), b: new Tensor(b, [w.rows, rank]) });
  }
  return layers;
}

/**
 * Writes `packed` (by module name, tuned weak columns already loaded) of the packed checkpoint `packedDir` into
 * `outDir` (replaced atomically, marked as written by `writtenBy`) in the GPTQ layout, an OWQ base's weak columns
 * as the adapter `<outDir>/weak-columns-adapter`. Refuses what the layout cannot hold exactly (see the header).
 */
export function writeExportedGptq(
  outDir: string,
  packedDir: string,
  packed: ReadonlyMap<string, PackedWeight>,
  writtenBy?: string,
): GptqExport {
  const qc = readQuantConfig(packedDir);
  const embeddings = new Set(Object.keys(qc.embeddings ?? {}));
  for (const [name, w] of packed) checkLayout(name, w, embeddings);
  const rank = Math.max(0, ...[...packed.values()].map((w) => w.weakIdx.length));
  const adapterDir = rank > 0 ? path.join(outDir, WEAK_ADAPTER_DIR) : undefined;
  return writeDirAtomic(
    outDir,
    (tmp) => {
      const quantization = gptqQuantizationConfig(qc, reordered(packed));
      copyModelFilesQuantizedAs(packedDir, tmp, quantization);
      fs.writeFileSync(path.join(tmp, GPTQ_CONFIG_FILE), `${JSON.stringify(quantization, null, 2)}\n`);
      const tensors = unpackedTensors(packedDir, packed);
      for (const [name, w] of packed) tensors.push(...gptqTensors(name, w));
      writeSafetensors(path.join(tmp, SINGLE_FILE), tensors, { format: 'pt' });
      if (rank > 0) {
        const hyper = { rank, alpha: rank, dropout: 0 };
        writeAdapter(path.join(tmp, WEAK_ADAPTER_DIR), weakColumnLora(packed, rank), hyper, path.resolve(outDir));
      }
      return { linears: packed.size, ...(adapterDir === undefined ? {} : { adapterDir }) };
    },
    writtenBy,
  );
}
