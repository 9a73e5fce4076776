/**
 * A packed checkpoint exported as one llama.cpp GGUF v3 file (`wct export --format gguf`), `<out>/model-<type>.gguf`,
 * for the Llama architectures llama.cpp runs as "llama" (Llama 1-3.x, Mistral, TinyStories), "qwen2" (Qwen2,
 * Qwen2.5) and "qwen3" (Qwen3), as convert_hf_to_gguf.py writes them:
 * - metadata: general.architecture / name / file_type / quantization_version, the `<arch>.*` hyperparameters
 *   (context_length = the usable length, embedding_length, block_count, feed_forward_length,
 *   attention.head_count / head_count_kv / layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count,
 *   vocab_size; key_length / value_length when head_dim is not hidden_size / heads), and the tokenizer with its chat
 *   template (src/export/gguf-tokenizer.ts);
 * - rope_scaling: `linear` as `<arch>.rope.scaling.type` "linear" and `<arch>.rope.scaling.factor`; Llama 3's
 *   `llama3` as no key but the F32 tensor `rope_freqs.weight` [head_dim / 2] of per-pair frequency divisors
 *   (src/export/gguf-rope-freqs.ts), first in the file as the converter yields it;
 * - tensors under llama.cpp's names (token_embd, blk.N.attn_norm / attn_q / attn_k / attn_v / attn_output /
 *   ffn_norm / ffn_gate / ffn_up / ffn_down, Qwen3's head norms blk.N.attn_q_norm / attn_k_norm [head_dim],
 *   output_norm, output when the embeddings are untied; q/k/v biases as attn_q.bias ...). For "llama", q_proj's and
 *   k_proj's rows (and biases) are permuted as the converter's LlamaModel.permute does: within each head, row
 *   2i + j of the GGUF is row j * head_dim/2 + i of Hugging Face's (rotate-half pairs (i, i + head_dim/2) become
 *   llama.cpp's adjacent pairs (2i, 2i + 1)); qwen2 and qwen3 run rotate-half RoPE (NEOX) and are not permuted.
 *
 * What is exact and what is re-quantized: norms (Qwen3's head norms too) and biases are F32, exactly as stored
 * (16-bit stored values are exact in F32). Every linear is re-quantized from Ŵ (packed part + weak columns +
 * outliers, with tuned deltas when given: src/native/packed.ts dequantize) into the chosen block-32 type
 * (src/export/gguf-quants.ts, bit for bit as gguf-py quantizes): GGUF's formats cannot hold the packed codes
 * (OWQ/GPTQ groups of another size, zero points, act-order permutations, full-precision weak columns), so nothing
 * is bit-exact with the packed model; the weak columns are baked into Ŵ before it is re-quantized and get no extra
 * precision. The token embedding (and an untied output) is Q8_0 for every type: the converter writes it Q8_0 for
 * q8_0, and for 4-bit types llama-quantize keeps the output projection at 6 bits (Q6_K, not written here), so Q8_0
 * is the nearest type here. A tensor whose rows are not whole blocks of 32 is written F16, as the converter falls
 * back. The file is written inside a directory replaced atomically (src/io/checkpoint-write.ts writeDirAtomic);
 * the file is the whole model (llama.cpp and Ollama read nothing beside it).
 *
 * Refused with one line: families llama.cpp has no architecture for here (OPT), and rope_scaling `dynamic`
 * (llama.cpp has no dynamic NTK RoPE; the converter writes nothing for it, so the file would run unscaled).
 */
import path from 'node:path';
import { OptionError } from '../errors.js';
import { readConfig, bpeConventions } from '../models/families/registry.js';
import {
  LLAMA_FINAL_NORM,
  LLAMA_LINEARS,
  LLAMA_NAMES,
  LLAMA_QK_NORMS,
  type LlamaConfig,
} from '../models/families/llama.js';
import { dequantize, type PackedWeight } from '../native/packed.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { writeDirAtomic } from '../io/checkpoint-write.js';
import { f32ToF16Array } from '../io/dtype.js';
import { GGML_BLOCK, ggmlQuantize, type GgmlBlockType, type GgmlType } from './gguf-quants.js';
import { llama3RopeFactors } from './gguf-rope-freqs.js';
import { ggufTokenizerMetadata } from './gguf-tokenizer.js';
import { type GgufTensor, type GgufValue, writeGguf } from './gguf-write.js';

/** The GGUF tensor types an export writes the linears in. */
export const GGUF_TYPES = ['Q8_0', 'Q4_0', 'Q4_1'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

/** What a GGUF export wrote. */
export interface GgufExport {
  /** The .gguf file written inside the output directory. */
  file: string;
  tensors: number;
}

/** general.file_type of each type (gguf-py LlamaFileType MOSTLY_*). */
const FILE_TYPE: Record<GgufType, number> = { Q8_0: 7, Q4_0: 2, Q4_1: 3 };
/** ggml's quantization version (GGML_QNT_VERSION), which llama.cpp checks. */
const QUANTIZATION_VERSION = 2;
/** The llama.cpp architecture of each model_type this exporter writes. */
const ARCHITECTURE: Record<string, string> = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2', qwen3: 'qwen3' };

/** The model as this exporter writes it: its Llama config and llama.cpp architecture. */
type GgufModel = LlamaConfig & { architecture: string };

/** llama.cpp's name of each block linear (gguf-py tensor_mapping.py). */
const GGUF_LINEAR: Record<keyof typeof LLAMA_LINEARS, string> = {
  q: 'attn_q',
  k: 'attn_k',
  v: 'attn_v',
  o: 'attn_output',
  gate: 'ffn_gate',
  up: 'ffn_up',
  down: 'ffn_down',
};
/** llama.cpp's names of the block norms, in LLAMA_NAMES.blockNorms order (input, post-attention). */
const GGUF_BLOCK_NORMS = ['attn_norm', 'ffn_norm'];
/** llama.cpp's names of Qwen3's q and k head norms (LLAMA_QK_NORMS). */
const GGUF_QK_NORMS: Record<keyof typeof LLAMA_QK_NORMS, string> = { q: 'attn_q_norm', k: 'attn_k_norm' };

/** The config as a Llama this exporter writes, or the one-line refusal. */
function llamaConfigOf(packedDir: string): GgufModel {
  const config = readConfig(packedDir);
  const modelType = config.modelType ?? config.family;
  const architecture = ARCHITECTURE[modelType];
  if (config.family !== 'llama' || architecture === undefined) {
    throw new OptionError(
      '--format',
      `gguf writes llama, mistral, qwen2 and qwen3 models (llama.cpp's "llama", "qwen2" and "qwen3"); ${packedDir} is ${modelType}: use --format hf`,
    );
  }
  const llama = config as LlamaConfig;
  if (llama.ropeScaling.type === 'dynamic') {
    throw new OptionError(
      '--format',
      `gguf: ${packedDir}/config.json has rope_scaling dynamic (NTK), which llama.cpp does not implement: use --format hf`,
    );
  }
  return { ...llama, architecture };
}

/** The `<arch>.*` and general.* metadata of `c` for a file of linears in `type`. */
function modelMetadata(c: GgufModel, name: string, type: GgufType): Map<string, GgufValue> {
  const a = c.architecture;
  const u32 = (value: number): GgufValue => ({ type: 'UINT32', value });
  const m = new Map<string, GgufValue>([
    ['general.architecture', { type: 'STRING', value: a }],
    ['general.name', { type: 'STRING', value: name }],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.quantization_version', u32(QUANTIZATION_VERSION)],
    [`${a}.vocab_size`, u32(c.vocabSize)],
    [`${a}.context_length`, u32(c.maxPositions)],
    [`${a}.embedding_length`, u32(c.hiddenSize)],
    [`${a}.block_count`, u32(c.numLayers)],
    [`${a}.feed_forward_length`, u32(c.intermediateSize)],
    [`${a}.attention.head_count`, u32(c.numHeads)],
    [`${a}.attention.head_count_kv`, u32(c.numKvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: 'FLOAT32', value: c.rmsNormEps }],
    [`${a}.rope.freq_base`, { type: 'FLOAT32', value: c.ropeTheta }],
    [`${a}.rope.dimension_count`, u32(c.headDim)],
  ]);
  if (c.ropeScaling.type === 'linear') {
    m.set(`${a}.rope.scaling.type`, { type: 'STRING', value: 'linear' });
    m.set(`${a}.rope.scaling.factor`, { type: 'FLOAT32', value: c.ropeScaling.factor });
  }
  if (c.headDim * c.numHeads !== c.hiddenSize) {
    m.set(`${a}.attention.key_length`, u32(c.headDim));
    m.set(`${a}.attention.value_length`, u32(c.headDim));
  }
  return m;
}

/**
 * The converter's LlamaModel.permute of the rows of x ([heads * headDim, cols], row-major): within each head, row
 * 2i + j of the result is row j * headDim/2 + i of x.
 */
function permuteRotaryRows(x: Float32Array, heads: number, cols: number): Float32Array {
  const half = x.length / cols / heads / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const [to, from] = [h * 2 * half + 2 * i + j, h * 2 * half + j * half + i];
        out.set(x.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** `w` [rows, cols] as a GGUF tensor in `type`, F16 when its rows are not whole blocks. */
function quantizedTensor(name: string, w: Float32Array, rows: number, cols: number, type: GgmlBlockType): GgufTensor {
  const [t, data]: [GgmlType, Uint8Array] =
    cols % GGML_BLOCK === 0 ? [type, ggmlQuantize(w, type)] : ['F16', new Uint8Array(f32ToF16Array(w).buffer)];
  return { name, shape: [rows, cols], type: t, data };
}

function f32Tensor(name: string, x: Float32Array): GgufTensor {
  return { name, shape: [x.length], type: 'F32', data: new Uint8Array(x.buffer, x.byteOffset, x.byteLength) };
}

/** The GGUF tensors of the model, in the converter's order. */
function ggufTensors(
  c: GgufModel,
  source: Checkpoint,
  packed: ReadonlyMap<string, PackedWeight>,
  type: GgufType,
): GgufTensor[] {
  /** Ŵ of a packed module, else the stored `<module>.weight`, as fp32 [rows, cols]. */
  const weight = (module: string): { w: Float32Array; rows: number; cols: number } => {
    const p = packed.get(module);
    if (p !== undefined) return { w: dequantize(p), rows: p.rows, cols: p.cols };
    const [rows, cols] = source.info(`${module}.weight`).shape;
    return { w: source.readFiniteF32(`${module}.weight`), rows, cols };
  };
  const matrix = (name: string, module: string, t: GgmlBlockType, heads?: number) => {
    const { w, rows, cols } = weight(module);
    return quantizedTensor(name, heads === undefined ? w : permuteRotaryRows(w, heads, cols), rows, cols, t);
  };
  const heads: Partial<Record<keyof typeof LLAMA_LINEARS, number>> =
    c.architecture === 'llama' ? { q: c.numHeads, k: c.numKvHeads } : {};
  const tensors: GgufTensor[] = [];
  if (c.ropeScaling.type === 'llama3')
    tensors.push(f32Tensor('rope_freqs.weight', llama3RopeFactors(c.headDim, c.ropeTheta, c.ropeScaling)));
  tensors.push(matrix('token_embd.weight', LLAMA_NAMES.tokenEmbedding, 'Q8_0'));
  for (let b = 0; b < c.numLayers; b++) {
    const prefix = LLAMA_NAMES.block(b);
    const norm = (name: string, module: string) =>
      tensors.push(f32Tensor(`blk.${b}.${name}.weight`, source.readFiniteF32(`${prefix}.${module}.weight`)));
    LLAMA_NAMES.blockNorms.forEach((module, i) => norm(GGUF_BLOCK_NORMS[i], module));
    if (c.qkNorm) for (const role of ['q', 'k'] as const) norm(GGUF_QK_NORMS[role], LLAMA_QK_NORMS[role]);
    for (const [role, module] of Object.entries(LLAMA_LINEARS) as [keyof typeof LLAMA_LINEARS, string][]) {
      const name = `blk.${b}.${GGUF_LINEAR[role]}`;
      tensors.push(matrix(`${name}.weight`, `${prefix}.${module}`, type, heads[role]));
      if (source.has(`${prefix}.${module}.bias`)) {
        const bias = source.readFiniteF32(`${prefix}.${module}.bias`);
        const h = heads[role];
        tensors.push(f32Tensor(`${name}.bias`, h === undefined ? bias : permuteRotaryRows(bias, h, 1)));
      }
    }
  }
  tensors.push(f32Tensor('output_norm.weight', source.readFiniteF32(`${LLAMA_FINAL_NORM}.weight`)));
  if (!c.tieWordEmbeddings) tensors.push(matrix('output.weight', LLAMA_NAMES.lmHead, 'Q8_0'));
  return tensors;
}

/**
 * Writes the GGUF export of the packed checkpoint `packedDir` into `outDir` (replaced atomically, marked as written
 * by `writtenBy`): `packed` holds every packed module's weight by module name (with any tuned weak columns and
 * outliers already loaded over it); the linears are written in `type`.
 */
export function writeExportedGguf(
  outDir: string,
  packedDir: string,
  packed: ReadonlyMap<string, PackedWeight>,
  type: GgufType,
  writtenBy?: string,
): GgufExport {
  const config = llamaConfigOf(packedDir);
  const file = `model-${type}.gguf`;
  return writeDirAtomic(
    outDir,
    (tmp) => {
      const metadata = modelMetadata(config, path.basename(path.resolve(packedDir)), type);
      for (const [k, v] of ggufTokenizerMetadata(packedDir, bpeConventions, config.architecture, config.vocabSize))
        metadata.set(k, v);
      const source = openCheckpoint(packedDir);
      let tensors: GgufTensor[];
      try {
        tensors = ggufTensors(config, source, packed, type);
      } finally {
        source.close();
      }
      writeGguf(path.join(tmp, file), metadata, tensors);
      return { file, tensors: tensors.length };
    },
    writtenBy,
  );
}
