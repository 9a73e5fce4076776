/**
 * A reader of the AutoGPTQ "gptq" (v1) checkpoint layout written for the tests, independent of the exporter
 * (src/export/gptq.ts): it unpacks as AutoGPTQ's QuantLinear dequantizes (qlinear_cuda_old.py's torch path),
 * field by field with that code's shift tables, including its 3-bit special cases, and with zeros = field + 1:
 *   W[n, j] = scales[g_idx[j], n] * (code(j, n) - (zero(g_idx[j], n) + 1))
 * and applies a PEFT LoRA adapter as PEFT does: W + (lora_alpha / r) B A.
 */
import path from 'node:path';
import fs from 'node:fs';
import { openSafetensors } from '../../src/io/safetensors.js';

/** A tensor's little-endian bytes as 32-bit ints (copied, so aligned). */
function int32s(raw: Uint8Array): Int32Array {
  return new Int32Array(raw.slice().buffer);
}

/** IEEE binary16 bits -> number, from the definition. */
function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** AutoGPTQ's 3-bit shift table: the 12 shifts read out of each of a triple of words. */
const WF3 = [
  [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0],
  [0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31],
  [0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0],
];

/** The 32 3-bit fields of the words w0, w1, w2, as AutoGPTQ reassembles the two straddling ones. */
function unpack3(w0: number, w1: number, w2: number): number[] {
  const f = [w0, w1, w2].map((w, t) => WF3[t].map((s) => w >>> s));
  f[0][10] = (f[0][10] & 0x3) | ((f[1][0] << 2) & 0x4);
  f[1][11] = (f[1][11] & 0x1) | ((f[2][0] << 1) & 0x6);
  return [...f[0].slice(0, 11), ...f[1].slice(1, 12), ...f[2].slice(1, 11)].map((v) => v & 0x7);
}

/**
 * The first `count` b-bit fields of the stream of words word(0), word(1), ...: 2/4/8 bits as AutoGPTQ's
 * `wf` = range(0, 32, b) shifts read them, 3 bits a triple of words (32 fields) at a time through unpack3.
 */
function fields(word: (w: number) => number, count: number, bits: number): Int32Array {
  const out = new Int32Array(count);
  if (bits === 3) {
    for (let t = 0; t * 32 < count; t++) {
      const f = unpack3(word(3 * t), word(3 * t + 1), word(3 * t + 2));
      for (let i = 0; i < 32 && t * 32 + i < count; i++) out[t * 32 + i] = f[i];
    }
    return out;
  }
  const per = 32 / bits;
  for (let i = 0; i < count; i++) out[i] = (word(Math.floor(i / per)) >>> (bits * (i % per))) & (2 ** bits - 1);
  return out;
}

export interface GptqSettings {
  bits: number;
  group_size: number;
  desc_act: boolean;
  sym: boolean;
  quant_method: string;
  checkpoint_format: string;
}

/** quantize_config.json of a GPTQ directory, checked equal to config.json's quantization_config. */
export function readGptqSettings(dir: string): GptqSettings {
  const file = JSON.parse(fs.readFileSync(path.join(dir, 'quantize_config.json'), 'utf8'));
  const inConfig = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).quantization_config;
  if (JSON.stringify(file) !== JSON.stringify(inConfig))
    throw new Error('quantize_config.json and config.json quantization_config differ');
  return file as GptqSettings;
}

/**
 * W [N, K] (row-major, fp32) of the GPTQ linear `name` in `dir`'s model.safetensors, dequantized as GPTQ does.
 * Checks the tensors' dtypes and shapes against the layout.
 */
export function readGptqLinear(
  dir: string,
  name: string,
  bits: number,
): { rows: number; cols: number; w: Float32Array } {
  const st = openSafetensors(path.join(dir, 'model.safetensors'));
  try {
    const expect = (t: string, dtype: string) => {
      const info = st.info(`${name}.${t}`);
      if (info.dtype !== dtype) throw new Error(`${name}.${t}: dtype ${info.dtype}, expected ${dtype}`);
      return info.shape;
    };
    const [kWords, n] = expect('qweight', 'I32');
    const [groups, nWords] = expect('qzeros', 'I32');
    const [sGroups, sN] = expect('scales', 'F16');
    const [k] = expect('g_idx', 'I32');
    if (kWords * 32 !== k * bits || nWords * 32 !== n * bits || sGroups !== groups || sN !== n)
      throw new Error(`${name}: inconsistent GPTQ shapes`);
    const qweight = int32s(st.readRaw(`${name}.qweight`));
    const qzeros = int32s(st.readRaw(`${name}.qzeros`));
    const scalesRaw = st.readRaw(`${name}.scales`);
    const scales = new Uint16Array(scalesRaw.slice().buffer);
    const gIdx = int32s(st.readRaw(`${name}.g_idx`));
    const zeros = Array.from({ length: groups }, (_, g) => fields((word) => qzeros[g * nWords + word], n, bits));
    const w = new Float32Array(n * k);
    for (let c = 0; c < n; c++) {
      const codes = fields((word) => qweight[word * n + c], k, bits);
      for (let j = 0; j < k; j++) {
        const g = gIdx[j];
        if (!(g >= 0 && g < groups)) throw new Error(`${name}.g_idx[${j}] = ${g} is not a group`);
        w[c * k + j] = half(scales[g * n + c]) * (codes[j] - (zeros[g][c] + 1));
      }
    }
    return { rows: n, cols: k, w };
  } finally {
    st.close();
  }
}

/** W + (lora_alpha / r) B A for the adapter's weights of `name` in the PEFT adapter directory `adapterDir` (in place). */
export function addLora(adapterDir: string, name: string, w: Float32Array, rows: number, cols: number): boolean {
  const config = JSON.parse(fs.readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
  const st = openSafetensors(path.join(adapterDir, 'adapter_model.safetensors'));
  try {
    const [ka, kb] = [`base_model.model.${name}.lora_A.weight`, `base_model.model.${name}.lora_B.weight`];
    if (!st.has(ka)) return false;
    const a = st.readF32(ka);
    const b = st.readF32(kb);
    const r = config.r as number;
    const scaling = config.lora_alpha / r;
    for (let n = 0; n < rows; n++) {
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let i = 0; i < r; i++) s += b[n * r + i] * a[i * cols + j];
        w[n * cols + j] += scaling * s;
      }
    }
    return true;
  } finally {
    st.close();
  }
}
