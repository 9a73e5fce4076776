/**
 * `wct export --format gguf`: a packed OWQ 3-bit TinyStories (weak columns; and with tuned --deltas) exported in
 * Q8_0, Q4_0 and Q4_1, read back with the `@huggingface/gguf` parser and checked against references written here:
 * every metadata key and value from config.json / tokenizer.json / tokenizer_config.json read as plain JSON; every
 * tensor's name, ggml shape, type and aligned offset; the linears decoded by the block decoders of
 * test/helpers/gguf-check.ts and, once llama.cpp's Q/K row permutation is undone, within the format's rounding of Ŵ
 * (the reference dequantization src/native/packed-ref.ts); norms equal to the stored ones; the permutation shown to turn Hugging Face's
 * rotate-half RoPE into llama.cpp's adjacent-pair RoPE. OPT is refused in one line. (No llama.cpp here to load the
 * file: the parser, the decoders and the RoPE identity are what is checked.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ToF16Bits } from '../../src/io/dtype.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import { loadModel } from '../../src/models/load.js';
import { packedLinearsOf, weakColumnsOf } from '../../src/models/weak-deltas.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import {
  BLOCK_BYTES,
  dequantizedOf,
  GGML,
  GGUF_TYPES,
  ggufRowOrder,
  outOfRounding,
  type Type,
} from '../helpers/gguf-check.js';
import { dataDir, optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const TYPES = GGUF_TYPES;
const FILE_TYPE: Record<Type, number> = { Q8_0: 7, Q4_0: 2, Q4_1: 3 };

let tmp: string;
let owq: string;
let deltas: string;
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const config = readJson(path.join(tinyStoriesDir, 'config.json'));
const tokenizerJson = readJson(path.join(tinyStoriesDir, 'tokenizer.json'));
const tokenizerConfig = readJson(path.join(tinyStoriesDir, 'tokenizer_config.json'));

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-export-gguf-'));
  owq = path.join(tmp, 'owq');
  const q = ['--method', 'owq', '--wbits', '3', '--target-bit', '3.1', '--calib-tokens', CALIB, '--nsamples', '16'];
  const r = wct(['quantize', '--model', tinyStoriesDir, ...q, '--seqlen', '128', '--out', owq]);
  expect(r.status, r.stderr).toBe(0);
  deltas = path.join(tmp, 'weak_deltas.safetensors');
  const donor = loadModel(owq);
  for (const l of packedLinearsOf(donor).values())
    for (let i = 0; i < l.packed.weak.length; i++) l.packed.weak[i] *= 1.5;
  writeWeakDeltas(deltas, weakColumnsOf(donor), { baseSha256: checkpointSha256(owq), recipeHash: 'x', step: 1 });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function exportGguf(out: string, type: Type, extra: string[] = []): string {
  const r = wct(['export', '--model', owq, '--format', 'gguf', '--gguf-type', type, ...extra, '--out', out]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toBe(
    `wrote ${out}: model-${type}.gguf: 20 tensors of ${owq}${extra.length ? ` with ${deltas}` : ''}, linears in ${type}\n`,
  );
  return path.join(out, `model-${type}.gguf`);
}

/** The expected GGUF name of each Hugging Face module (llama.cpp's tensor_mapping for Llama). */
function ggufNames(): [string, string][] {
  const roles: [string, string][] = [
    ['attn_q', 'self_attn.q_proj'],
    ['attn_k', 'self_attn.k_proj'],
    ['attn_v', 'self_attn.v_proj'],
    ['attn_output', 'self_attn.o_proj'],
    ['ffn_gate', 'mlp.gate_proj'],
    ['ffn_up', 'mlp.up_proj'],
    ['ffn_down', 'mlp.down_proj'],
  ];
  const names: [string, string][] = [['token_embd', 'model.embed_tokens']];
  for (let b = 0; b < config.num_hidden_layers; b++) {
    names.push([`blk.${b}.attn_norm`, `model.layers.${b}.input_layernorm`]);
    names.push([`blk.${b}.ffn_norm`, `model.layers.${b}.post_attention_layernorm`]);
    for (const [g, h] of roles) names.push([`blk.${b}.${g}`, `model.layers.${b}.${h}`]);
  }
  names.push(['output_norm', 'model.norm']);
  return names;
}

/** The metadata the file must hold, from the model's JSON files (TinyStories: a byte-fallback BPE, "llama"). */
function expectedMetadata(type: Type): Record<string, unknown> {
  const vocab = tokenizerJson.model.vocab as Record<string, number>;
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
  for (const a of tokenizerJson.added_tokens) tokens[a.id] = a.content;
  const merges = (tokenizerJson.model.merges as (string | string[])[]).map((m) =>
    typeof m === 'string' ? m.split(' ') : m,
  );
  const rankOf = new Map<string, number>();
  merges.forEach(([a, b], r) => rankOf.has(a + b) || rankOf.set(a + b, r));
  const special = new Set(
    tokenizerJson.added_tokens.filter((a: { special: boolean }) => a.special).map((a: { id: number }) => a.id),
  );
  const idOf = (t: string) => tokens.indexOf(t);
  const headDim = config.hidden_size / config.num_attention_heads;
  const kv: Record<string, unknown> = {
    'general.architecture': 'llama',
    'general.name': 'owq',
    'general.file_type': FILE_TYPE[type],
    'general.quantization_version': 2,
    'llama.vocab_size': config.vocab_size,
    'llama.context_length': config.max_position_embeddings,
    'llama.embedding_length': config.hidden_size,
    'llama.block_count': config.num_hidden_layers,
    'llama.feed_forward_length': config.intermediate_size,
    'llama.attention.head_count': config.num_attention_heads,
    'llama.attention.head_count_kv': config.num_key_value_heads,
    'llama.attention.layer_norm_rms_epsilon': Math.fround(config.rms_norm_eps),
    'llama.rope.freq_base': config.rope_theta,
    'llama.rope.dimension_count': headDim,
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.pre': 'default',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': tokens.map((t) => -(rankOf.get(t) ?? merges.length)),
    'tokenizer.ggml.token_type': tokens.map((t, id) => (special.has(id) ? 3 : /^<0x[0-9A-F]{2}>$/i.test(t) ? 6 : 1)),
    'tokenizer.ggml.bos_token_id': idOf(tokenizerConfig.bos_token),
    'tokenizer.ggml.eos_token_id': idOf(tokenizerConfig.eos_token),
    'tokenizer.ggml.unknown_token_id': idOf(tokenizerJson.model.unk_token),
    'tokenizer.ggml.padding_token_id': idOf(tokenizerConfig.pad_token),
    'tokenizer.ggml.add_bos_token': tokenizerConfig.add_bos_token,
    'tokenizer.ggml.add_eos_token': tokenizerConfig.add_eos_token,
  };
  return { version: 3, tensor_count: BigInt(ggufNames().length), kv_count: BigInt(Object.keys(kv).length), ...kv };
}

/** Checks the file's metadata, layout and data against Ŵ (`dequantized`) and the stored tensors. */
async function checkFile(file: string, type: Type, dequantized: ReturnType<typeof dequantizedOf>): Promise<void> {
  const parsed = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  expect(parsed.littleEndian).toBe(true);
  expect(parsed.metadata).toEqual(expectedMetadata(type));
  // the converter's value types: u32 sizes and ids, f32 floats, i32 token types
  const typed = parsed.typedMetadata as unknown as Record<string, { type: number; subType?: number }>;
  expect(typed['llama.block_count'].type).toBe(4);
  expect(typed['llama.rope.freq_base'].type).toBe(6);
  expect(typed['tokenizer.ggml.bos_token_id'].type).toBe(4);
  expect(typed['tokenizer.ggml.scores'].subType).toBe(6);
  expect(typed['tokenizer.ggml.token_type'].subType).toBe(5);

  const bytes = new Uint8Array(fs.readFileSync(file));
  expect(Number(parsed.tensorDataOffset) % 32).toBe(0);
  const stored = openSafetensors(path.join(owq, 'model.safetensors'));
  try {
    const names = ggufNames();
    expect(parsed.tensorInfos.map((t) => t.name)).toEqual(names.map(([g]) => `${g}.weight`));
    let offset = 0n;
    for (const [info, [, hf]] of parsed.tensorInfos.map((t, i) => [t, names[i]] as const)) {
      expect(info.offset, info.name).toBe(offset);
      const start = Number(parsed.tensorDataOffset + info.offset);
      const isNorm = /norm$/.test(hf);
      const source = dequantized.get(hf) ?? {
        w: stored.readF32(`${hf}.weight`),
        rows: stored.info(`${hf}.weight`).shape[0],
        cols: stored.info(`${hf}.weight`).shape[1] ?? 1,
      };
      if (isNorm) {
        expect(info).toMatchObject({ n_dims: 1, shape: [BigInt(source.rows)], dtype: GGML.F32 });
        const got = new Float32Array(bytes.slice(start, start + source.rows * 4).buffer);
        expect(Array.from(got), info.name).toEqual(Array.from(source.w));
        offset += BigInt(Math.ceil((source.rows * 4) / 32) * 32);
        continue;
      }
      // the embedding is Q8_0 in every type; the block linears in `type`
      const t: Type = hf.endsWith('embed_tokens') ? 'Q8_0' : type;
      expect(info).toMatchObject({ n_dims: 2, shape: [BigInt(source.cols), BigInt(source.rows)], dtype: GGML[t] });
      const size = ((source.rows * source.cols) / 32) * BLOCK_BYTES[t];
      const data = bytes.subarray(start, start + size);
      const heads = hf.endsWith('q_proj')
        ? config.num_attention_heads
        : hf.endsWith('k_proj')
          ? config.num_key_value_heads
          : 0;
      if (heads === 0) {
        expect(outOfRounding(t, data, source.w), info.name).toBe(0);
      } else {
        // within the rounding of Ŵ in llama.cpp's row order, and not of Ŵ as Hugging Face orders it
        const permuted = ggufRowOrder(source.w, source.rows, source.cols, source.rows / heads);
        expect(outOfRounding(t, data, permuted), info.name).toBe(0);
        expect(outOfRounding(t, data, source.w), `${info.name} unpermuted`).toBeGreaterThan(0);
      }
      offset += BigInt(Math.ceil(size / 32) * 32);
    }
    expect(Number(parsed.tensorDataOffset + offset)).toBe(bytes.length);
  } finally {
    stored.close();
  }
}

describe('wct export --format gguf', () => {
  it.each(TYPES)('%s: metadata, tensor layout and every element within the rounding of Ŵ', async (type) => {
    const file = exportGguf(path.join(tmp, `gguf-${type}`), type);
    const dequantized = dequantizedOf(owq);
    expect([...dequantized.values()].length).toBe(14);
    await checkFile(file, type, dequantized);
    expect(fs.readdirSync(path.dirname(file)).filter((f) => !f.startsWith('.'))).toEqual([`model-${type}.gguf`]);
  });

  it('--deltas: the tuned weak columns are in the re-quantized weights', async () => {
    const file = exportGguf(path.join(tmp, 'gguf-tuned'), 'Q8_0', ['--deltas', deltas]);
    await checkFile(file, 'Q8_0', dequantizedOf(owq, deltas));
    const plain = fs.readFileSync(path.join(tmp, 'gguf-Q8_0', 'model-Q8_0.gguf'));
    expect(fs.readFileSync(file).equals(plain)).toBe(false);
  });

  it("the Q/K permutation turns Hugging Face's rotate-half RoPE into llama.cpp's adjacent-pair RoPE", () => {
    const hd = 8;
    const q = Float32Array.from({ length: hd }, (_, i) => Math.sin(i + 1));
    const theta = (i: number, pos: number) => pos * 10000 ** ((-2 * i) / hd);
    const pos = 5;
    // HF: pairs (i, i + hd/2); llama.cpp (rope NORM): pairs (2i, 2i + 1)
    const hfRope = new Float32Array(hd);
    const cppRope = new Float32Array(hd);
    const permuted = ggufRowOrder(q, hd, 1, hd);
    for (let i = 0; i < hd / 2; i++) {
      const [c, s] = [Math.cos(theta(i, pos)), Math.sin(theta(i, pos))];
      [hfRope[i], hfRope[i + hd / 2]] = [q[i] * c - q[i + hd / 2] * s, q[i + hd / 2] * c + q[i] * s];
      [cppRope[2 * i], cppRope[2 * i + 1]] = [
        permuted[2 * i] * c - permuted[2 * i + 1] * s,
        permuted[2 * i + 1] * c + permuted[2 * i] * s,
      ];
    }
    expect(Array.from(cppRope)).toEqual(Array.from(ggufRowOrder(hfRope, hd, 1, hd)));
  });

  it('Qwen2 (byte-level BPE): architecture qwen2, the gpt2 tokenizer with its merges, biases F32, no permutation', async () => {
    // a random Qwen2 of the real config keys, with GPT-2's byte-level vocab.json + merges.txt as its tokenizer
    const [qwen, packedQwen, out] = ['qwen2', 'qwen2-rtn', 'qwen2-gguf'].map((d) => path.join(tmp, d));
    const sizes = ['--layers', '1', '--hidden-size', '64', '--intermediate-size', '128', '--num-heads', '4'];
    let r = wct(['init-random', '--like', 'qwen2-0.5b', ...sizes, '--num-kv-heads', '2', '--out', qwen]);
    expect(r.status, r.stderr).toBe(0);
    for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(optTinyDir, f), path.join(qwen, f));
    r = wct([
      'quantize',
      '--model',
      qwen,
      '--method',
      'rtn',
      '--wbits',
      '4',
      '--group-size',
      '32',
      '--out',
      packedQwen,
    ]);
    expect(r.status, r.stderr).toBe(0);
    r = wct(['export', '--model', packedQwen, '--format', 'gguf', '--gguf-type', 'Q4_1', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const file = path.join(out, 'model-Q4_1.gguf');
    const parsed = await gguf(file, { allowLocalFile: true });
    const qc = readJson(path.join(qwen, 'config.json'));
    const m = parsed.metadata as unknown as Record<string, unknown>;
    expect(m['general.architecture']).toBe('qwen2');
    expect(Object.keys(m).filter((k) => k.startsWith('llama.'))).toEqual([]);
    expect([m['qwen2.block_count'], m['qwen2.embedding_length'], m['qwen2.attention.head_count_kv']]).toEqual([
      1, 64, 2,
    ]);
    expect([m['qwen2.vocab_size'], m['qwen2.rope.freq_base']]).toEqual([qc.vocab_size, qc.rope_theta]);
    expect([m['tokenizer.ggml.model'], m['tokenizer.ggml.pre']]).toEqual(['gpt2', 'qwen2']);
    expect(m).not.toHaveProperty('tokenizer.ggml.scores');
    const merges = fs.readFileSync(path.join(optTinyDir, 'merges.txt'), 'utf8').split('\n');
    expect(m['tokenizer.ggml.merges']).toEqual(merges.filter((l, i) => l !== '' && !(i === 0 && l.startsWith('#'))));
    const vocab = readJson(path.join(optTinyDir, 'vocab.json')) as Record<string, number>;
    const tokens = Array.from({ length: qc.vocab_size }, (_, id) => `[PAD${id}]`);
    for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
    expect(m['tokenizer.ggml.tokens']).toEqual(tokens);
    const n = Object.keys(vocab).length;
    // GPT-2's <|endoftext|> is its one special token (transformers' GPT2Tokenizer: bos, eos and unk)
    const control = vocab['<|endoftext|>'];
    expect(m['tokenizer.ggml.token_type']).toEqual(tokens.map((_, id) => (id === control ? 3 : id < n ? 1 : 5)));
    expect([m['tokenizer.ggml.bos_token_id'], m['tokenizer.ggml.eos_token_id']]).toEqual([control, control]);
    expect(m['tokenizer.ggml.add_bos_token']).toBe(false);
    // q/k/v carry F32 biases equal to the stored ones; q is Ŵ's rows in Hugging Face's order (no permutation)
    const bytes = new Uint8Array(fs.readFileSync(file));
    const at = (name: string) => {
      const info = parsed.tensorInfos.find((t) => t.name === name)!;
      return { info, start: Number(parsed.tensorDataOffset + info.offset) };
    };
    const stored = openSafetensors(path.join(packedQwen, 'model.safetensors'));
    try {
      for (const proj of ['q', 'k', 'v']) {
        const bias = stored.readF32(`model.layers.0.self_attn.${proj}_proj.bias`);
        const { info, start } = at(`blk.0.attn_${proj}.bias`);
        expect(info).toMatchObject({ dtype: GGML.F32, shape: [BigInt(bias.length)] });
        expect(Array.from(new Float32Array(bytes.slice(start, start + bias.length * 4).buffer))).toEqual(
          Array.from(bias),
        );
      }
    } finally {
      stored.close();
    }
    const q = dequantizedOf(packedQwen).get('model.layers.0.self_attn.q_proj')!;
    const { info, start } = at('blk.0.attn_q.weight');
    expect(info).toMatchObject({ dtype: GGML.Q4_1, shape: [BigInt(q.cols), BigInt(q.rows)] });
    expect(outOfRounding('Q4_1', bytes.subarray(start), q.w)).toBe(0);
  });

  it('a tensor whose rows are not whole blocks of 32 is written F16 (f16 of Ŵ, rows in llama.cpp order); the chat template', async () => {
    const [random, packedRandom, out] = ['narrow', 'narrow-rtn', 'narrow-gguf'].map((d) => path.join(tmp, d));
    const sizes = ['--layers', '1', '--hidden-size', '48', '--intermediate-size', '64', '--num-heads', '4'];
    let r = wct(['init-random', '--like', 'tinystories-656k', ...sizes, '--num-kv-heads', '2', '--out', random]);
    expect(r.status, r.stderr).toBe(0);
    // with a chat template, which the file carries as tokenizer.chat_template
    const template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:";
    fs.copyFileSync(path.join(tinyStoriesDir, 'tokenizer.json'), path.join(random, 'tokenizer.json'));
    const withTemplate = { ...tokenizerConfig, chat_template: template };
    fs.writeFileSync(path.join(random, 'tokenizer_config.json'), JSON.stringify(withTemplate));
    r = wct(['quantize', '--model', random, '--method', 'rtn', '--wbits', '4', '--out', packedRandom]);
    expect(r.status, r.stderr).toBe(0);
    r = wct(['export', '--model', packedRandom, '--format', 'gguf', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const file = path.join(out, 'model-Q8_0.gguf');
    const parsed = await gguf(file, { allowLocalFile: true });
    expect((parsed.metadata as unknown as Record<string, unknown>)['tokenizer.chat_template']).toBe(template);
    const bytes = new Uint8Array(fs.readFileSync(file));
    const dequantized = dequantizedOf(packedRandom);
    const F16 = 1;
    for (const [g, hf, heads] of [
      ['attn_q', 'self_attn.q_proj', 4],
      ['attn_k', 'self_attn.k_proj', 2],
      ['ffn_up', 'mlp.up_proj', 0],
      ['ffn_down', 'mlp.down_proj', 0],
    ] as const) {
      const { w, rows, cols } = dequantized.get(`model.layers.0.${hf}`)!;
      const info = parsed.tensorInfos.find((t) => t.name === `blk.0.${g}.weight`)!;
      const start = Number(parsed.tensorDataOffset + info.offset);
      if (cols % 32 !== 0) {
        expect(info.dtype, g).toBe(F16);
        const want = heads === 0 ? w : ggufRowOrder(w, rows, cols, rows / heads);
        const got = new Uint16Array(bytes.slice(start, start + rows * cols * 2).buffer);
        expect(Array.from(got), g).toEqual(Array.from(want, f32ToF16Bits));
      } else {
        expect(info.dtype, g).toBe(GGML.Q8_0); // down_proj: 64 columns
        expect(outOfRounding('Q8_0', bytes.subarray(start), w), g).toBe(0);
      }
    }
    expect(parsed.tensorInfos.find((t) => t.name === 'token_embd.weight')!.dtype).toBe(F16);
  });

  it('refuses OPT (no llama.cpp architecture here) in one line, writing nothing', () => {
    const opt = path.join(tmp, 'opt');
    const r = wct(['quantize', '--model', optTinyDir, '--method', 'rtn', '--wbits', '4', '--out', opt]);
    expect(r.status, r.stderr).toBe(0);
    const out = path.join(tmp, 'opt-gguf');
    expect(expectOneLineError(wct(['export', '--model', opt, '--format', 'gguf', '--out', out]))).toMatch(
      /--format: gguf writes llama, mistral, qwen2 and qwen3 models .* is opt: use --format hf/,
    );
    expect(fs.existsSync(out)).toBe(false);
  });
});
