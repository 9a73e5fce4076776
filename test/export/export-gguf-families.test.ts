/**
 * `wct export --format gguf` of the newer Llama families, on small random checkpoints (`wct init-random`, the
 * embeddings cut to a shipped tokenizer's size: TinyStories' for Llama, GPT-2's byte-level BPE for Qwen3) quantized
 * RTN 4-bit: Llama 3.1 (rope_scaling llama3, untied embeddings) with its
 * `rope_freqs.weight`, whose factors, applied as llama.cpp applies them (the base frequency theta^(-2i/D), built as
 * ggml builds it, divided by factor i), must give src/autograd/ops/rope-frequencies.ts's llama3 inverse frequencies
 * to fp32 rounding; the untied `output.weight` within Q8_0's rounding of lm_head; `linear` scaling's two metadata
 * keys; `dynamic` refused in one line; and Qwen3: architecture "qwen3", its q/k head norms as attn_q_norm /
 * attn_k_norm byte-equal to the stored ones, q and k not permuted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ropeInvFreq, type RopeScaling } from '../../src/autograd/ops/rope-frequencies.js';
import type { Dtype } from '../../src/io/dtype.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dequantizedOf, GGML, ggufRowOrder, outOfRounding, readGguf } from '../helpers/gguf-check.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const GPT2 = path.join(dataDir, 'tokenizers/gpt2');
const SIZES = ['--layers', '1', '--hidden-size', '64', '--intermediate-size', '96', '--num-heads', '4'];
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

let tmp: string;
let llama: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-export-gguf-families-'));
  // with TinyStories' 2048-token tokenizer and embeddings cut to match (a 128256-row vocab costs seconds)
  llama = packedRandom('llama-3.1-8b', ['--num-kv-heads', '2'], (dir) => {
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      fs.copyFileSync(path.join(tinyStoriesDir, f), path.join(dir, f));
    cutVocab(dir, 2048);
  });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]): void {
  const r = wct(args);
  expect(r.status, r.stderr).toBe(0);
}

/** A random `like` at SIZES, changed by `edit` (which gives it its tokenizer), packed RTN 4-bit g32. */
function packedRandom(like: string, extra: string[], edit: (dir: string) => void): string {
  const [random, packed] = [like, `${like}-rtn`].map((d) => path.join(tmp, d));
  run(['init-random', '--like', like, ...SIZES, ...extra, '--out', random]);
  edit(random);
  run(['quantize', '--model', random, '--method', 'rtn', '--wbits', '4', '--group-size', '32', '--out', packed]);
  return packed;
}

type Tensor = { dtype: Dtype; shape: number[]; data: Uint8Array };

/** Rewrites `dir`'s model.safetensors with each tensor replaced by `f` of it (its bytes as stored). */
function rewriteTensors(dir: string, f: (name: string, t: Tensor) => Tensor): void {
  const file = path.join(dir, 'model.safetensors');
  const st = openSafetensors(file);
  const tensors = st
    .names()
    .map((name) => ({ name, ...f(name, { ...st.info(name), data: st.readRaw(name).slice() }) }));
  st.close();
  writeSafetensors(file, tensors, { format: 'pt' });
}

/** Cuts `dir`'s embedding (and lm_head) to their first `vocab` rows, config.json to match (bos 1, eos 2). */
function cutVocab(dir: string, vocab: number): void {
  rewriteTensors(dir, (name, t) => {
    if (!/embed_tokens|lm_head/.test(name)) return t;
    const rowBytes = t.data.length / t.shape[0];
    return { ...t, shape: [vocab, t.shape[1]], data: t.data.subarray(0, vocab * rowBytes) };
  });
  const config = readJson(path.join(dir, 'config.json'));
  const small = { ...config, vocab_size: vocab, bos_token_id: 1, eos_token_id: 2 };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(small));
}

/** A copy of packed checkpoint `dir` (files hard-linked) whose config.json has `rope` merged in. */
function withConfig(dir: string, name: string, rope: Record<string, unknown>): string {
  const out = path.join(tmp, name);
  fs.mkdirSync(out);
  for (const f of fs.readdirSync(dir)) if (f !== 'config.json') fs.linkSync(path.join(dir, f), path.join(out, f));
  fs.writeFileSync(
    path.join(out, 'config.json'),
    JSON.stringify({ ...readJson(path.join(dir, 'config.json')), ...rope }),
  );
  return out;
}

function exportGguf(model: string, name: string, type = 'Q8_0'): string {
  const out = path.join(tmp, name);
  run(['export', '--model', model, '--format', 'gguf', '--gguf-type', type, '--out', out]);
  return path.join(out, `model-${type}.gguf`);
}

/** The GGUF tensor names of a one-block Llama-family model, in the exporter's order. */
function blockNames(extraNorms: string[], untied: boolean, ropeFreqs = false): string[] {
  const linears = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'];
  const block = ['attn_norm', 'ffn_norm', ...extraNorms, ...linears].map((n) => `blk.0.${n}`);
  const names = [...(ropeFreqs ? ['rope_freqs'] : []), 'token_embd', ...block, 'output_norm'];
  return [...names, ...(untied ? ['output'] : [])].map((n) => `${n}.weight`);
}

describe('wct export --format gguf: Llama 3.x rope_scaling, Qwen3', () => {
  it("llama3: rope_freqs's factors, applied as llama.cpp does, give the llama3 inverse frequencies; the untied output", async () => {
    const g = await readGguf(exportGguf(llama, 'llama3-gguf'));
    const config = readJson(path.join(llama, 'config.json'));
    const rs = config.rope_scaling;
    expect([config.tie_word_embeddings, rs.rope_type]).toEqual([false, 'llama3']);
    expect(g.parsed.tensorInfos.map((t) => t.name)).toEqual(blockNames([], true, true));
    expect(Object.keys(g.metadata).filter((k) => k.includes('rope.scaling'))).toEqual([]);

    const headDim = config.hidden_size / config.num_attention_heads;
    const { info } = g.tensor('rope_freqs.weight');
    expect(info).toMatchObject({ n_dims: 1, shape: [BigInt(headDim / 2)], dtype: GGML.F32 });
    const factors = g.f32('rope_freqs.weight');
    // this size reaches all three llama3 bands: kept (1), divided by factor, and interpolated between
    expect(factors.filter((f) => f === 1).length).toBeGreaterThan(0);
    expect(factors.filter((f) => f === rs.factor).length).toBeGreaterThan(0);
    expect(factors.filter((f) => f > 1 && f < rs.factor).length).toBeGreaterThan(0);

    // ggml's rope cache: theta_scale = base^(-2/n_dims) in fp32, raised to i by repeated fp32 products
    const thetaScale = Math.fround(Math.fround(config.rope_theta) ** Math.fround(-2 / headDim));
    const scaling: RopeScaling = {
      type: 'llama3',
      factor: rs.factor,
      lowFreqFactor: rs.low_freq_factor,
      highFreqFactor: rs.high_freq_factor,
      originalMaxPositions: rs.original_max_position_embeddings,
    };
    const want = ropeInvFreq(headDim, config.rope_theta, scaling, 1, 'f32');
    let base = 1;
    factors.forEach((factor, i) => {
      const got = Math.fround(base / factor);
      // within fp32 rounding: a few ulps per product in ggml's chain and per step of each side
      expect(Math.abs(got - want[i]), `pair ${i}`).toBeLessThanOrEqual(2 ** -23 * (i + 3) * want[i]);
      base = Math.fround(base * thetaScale);
    });

    // the untied lm_head is output.weight, Q8_0 within the rounding of the stored matrix
    const stored = openSafetensors(path.join(llama, 'model.safetensors'));
    try {
      const lmHead = stored.readF32('lm_head.weight');
      const [rows, cols] = stored.info('lm_head.weight').shape;
      const out = g.tensor('output.weight');
      expect(out.info).toMatchObject({ shape: [BigInt(cols), BigInt(rows)], dtype: GGML.Q8_0 });
      expect(outOfRounding('Q8_0', out.data, lmHead)).toBe(0);
      // and not the embedding's
      const embedding = stored.readF32('model.embed_tokens.weight');
      expect(outOfRounding('Q8_0', out.data, embedding)).toBeGreaterThan(0);
    } finally {
      stored.close();
    }
  });

  it('linear: rope.scaling.type "linear" and rope.scaling.factor, no rope_freqs; dynamic is refused in one line', async () => {
    const linear = withConfig(llama, 'linear', {
      max_position_embeddings: 4096,
      rope_scaling: { rope_type: 'linear', factor: 2.5 },
    });
    const g = await readGguf(exportGguf(linear, 'linear-gguf'));
    const scalingKeys = Object.fromEntries(Object.entries(g.metadata).filter(([k]) => k.includes('rope.scaling')));
    expect(scalingKeys).toEqual({ 'llama.rope.scaling.type': 'linear', 'llama.rope.scaling.factor': 2.5 });
    expect(g.metadata['llama.context_length']).toBe(4096 * 2.5);
    expect(g.parsed.tensorInfos.map((t) => t.name)).toEqual(blockNames([], true));

    const dynamic = withConfig(llama, 'dynamic', {
      max_position_embeddings: 4096,
      rope_scaling: { rope_type: 'dynamic', factor: 2 },
    });
    const out = path.join(tmp, 'dynamic-gguf');
    expect(expectOneLineError(wct(['export', '--model', dynamic, '--format', 'gguf', '--out', out]))).toMatch(
      /--format: gguf: .*dynamic\/config\.json has rope_scaling dynamic \(NTK\), which llama\.cpp does not implement: use --format hf/,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('Qwen3: architecture qwen3, attn_q_norm / attn_k_norm F32 as stored, q and k in Hugging Face row order', async () => {
    const headDim = 32; // q_proj [4 * 32, 64]: key_length differs from hidden_size / heads
    // GPT-2's byte-level tokenizer (the embedding cut to its size); distinct head-norm weights (init-random writes ones), so equality says which
    // tensor went where
    const qwen = packedRandom('qwen3-0.6b', ['--num-kv-heads', '2', '--head-dim', String(headDim)], (dir) => {
      for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(GPT2, f), path.join(dir, f));
      cutVocab(dir, Object.keys(readJson(path.join(GPT2, 'vocab.json'))).length);
      rewriteTensors(dir, (name, t) => {
        if (!/self_attn\.[qk]_norm\.weight$/.test(name)) return t;
        const sign = name.includes('q_norm') ? 1 : -1;
        const w = Float32Array.from({ length: t.shape[0] }, (_, i) => sign * (0.5 + i / 64));
        return { dtype: 'F32', shape: t.shape, data: new Uint8Array(w.buffer) };
      });
    });
    const g = await readGguf(exportGguf(qwen, 'qwen3-gguf', 'Q4_0'));
    const m = g.metadata;
    expect(m['general.architecture']).toBe('qwen3');
    const prefixes = new Set(Object.keys(m).flatMap((k) => (k.includes('.') ? [k.split('.')[0]] : [])));
    expect([...prefixes].sort()).toEqual(['general', 'qwen3', 'tokenizer']);
    expect([m['qwen3.attention.key_length'], m['qwen3.attention.value_length']]).toEqual([headDim, headDim]);
    expect([m['qwen3.rope.dimension_count'], m['qwen3.attention.head_count_kv']]).toEqual([headDim, 2]);
    expect([m['tokenizer.ggml.model'], m['tokenizer.ggml.pre']]).toEqual(['gpt2', 'qwen2']);
    expect(g.parsed.tensorInfos.map((t) => t.name)).toEqual(blockNames(['attn_q_norm', 'attn_k_norm'], false));

    const stored = openSafetensors(path.join(qwen, 'model.safetensors'));
    try {
      for (const [gguf, hf] of [
        ['attn_q_norm', 'q_norm'],
        ['attn_k_norm', 'k_norm'],
      ]) {
        const want = stored.readRaw(`model.layers.0.self_attn.${hf}.weight`);
        const { info, data } = g.tensor(`blk.0.${gguf}.weight`);
        expect(info).toMatchObject({ n_dims: 1, shape: [BigInt(headDim)], dtype: GGML.F32 });
        expect(Buffer.from(data.subarray(0, want.length)).equals(Buffer.from(want)), gguf).toBe(true);
      }
    } finally {
      stored.close();
    }
    const dequantized = dequantizedOf(qwen);
    for (const [gguf, hf] of [
      ['attn_q', 'q_proj'],
      ['attn_k', 'k_proj'],
      ['attn_v', 'v_proj'],
      ['attn_output', 'o_proj'],
    ]) {
      const { w, rows, cols } = dequantized.get(`model.layers.0.self_attn.${hf}`)!;
      const { info, data } = g.tensor(`blk.0.${gguf}.weight`);
      expect(info).toMatchObject({ shape: [BigInt(cols), BigInt(rows)], dtype: GGML.Q4_0 });
      expect(outOfRounding('Q4_0', data, w), gguf).toBe(0);
      // not in llama.cpp's permuted order: Qwen3 runs rotate-half RoPE as Hugging Face does
      if (gguf === 'attn_q' || gguf === 'attn_k')
        expect(outOfRounding('Q4_0', data, ggufRowOrder(w, rows, cols, headDim)), `${gguf} permuted`).toBeGreaterThan(
          0,
        );
    }
  });
});
