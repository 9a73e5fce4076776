/**
 * config.json normalization and the tensor list it implies: the real checkpoints' configs, the
 * project's model presets (parameter counts checked against the published totals), each family
 * variant, and the errors for unsupported or malformed configs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTensors, expectedTensorShapes, resolveTensorName } from '../../src/models/checkpoint-tensors.js';
import { parseConfig, readConfig } from '../../src/models/families/registry.js';
import type { ModelConfig } from '../../src/models/model.js';
import type { TensorInfo } from '../../src/io/safetensors.js';
import { openCheckpoint } from '../../src/io/safetensors.js';
import { optTinyDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';
import { inputErrorMessage } from '../helpers/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-io-cfg-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tinyRaw = JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'config.json'), 'utf8'));
const optRaw = JSON.parse(fs.readFileSync(path.join(optTinyDir, 'config.json'), 'utf8'));
const preset = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(repoRoot, 'configs/models', `${name}.json`), 'utf8'));

const numel = (shapes: Map<string, number[]>) =>
  [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);

/** A tensor index made of the expected shapes, with `edit` applied. */
function indexOf(cfg: ModelConfig, edit: (m: Map<string, TensorInfo>) => void = () => undefined) {
  const m = new Map([...expectedTensorShapes(cfg)].map(([n, shape]) => [n, { dtype: 'F32' as const, shape }]));
  edit(m);
  return { names: () => [...m.keys()], info: (n: string) => m.get(n)! };
}

describe('parseConfig', () => {
  it('TinyStories-656K', () => {
    expect(readConfig(tinyStoriesDir)).toEqual({
      family: 'llama',
      modelType: 'llama',
      hiddenSize: 128,
      intermediateSize: 384,
      numLayers: 2,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 16,
      vocabSize: 2048,
      maxPositions: 512,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      ropeScaling: { type: 'default' },
      qkNorm: false,
      tieWordEmbeddings: true,
      attentionBias: false,
      attentionOutBias: false,
      mlpBias: false,
      hiddenAct: 'silu',
      bosTokenId: 1,
      eosTokenId: 2,
    });
  });

  it('opt-tiny-random', () => {
    expect(readConfig(optTinyDir)).toEqual({
      family: 'opt',
      hiddenSize: 64,
      ffnDim: 256,
      numLayers: 2,
      numHeads: 4,
      vocabSize: 50272,
      maxPositions: 128,
      wordEmbedProjDim: 64,
      doLayerNormBefore: true,
      activation: 'relu',
      enableBias: true,
      layerNormElementwiseAffine: true,
      tieWordEmbeddings: true,
      bosTokenId: 2,
      eosTokenId: 2,
      padTokenId: 1,
    });
  });

  it('applies the transformers defaults', () => {
    const { num_key_value_heads, rms_norm_eps, rope_theta, tie_word_embeddings, ...rest } = tinyRaw;
    const cfg = parseConfig(rest);
    expect(cfg).toMatchObject({ numKvHeads: 8, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false });
    expect(
      parseConfig({
        model_type: 'opt',
        hidden_size: 64,
        ffn_dim: 256,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        vocab_size: 10,
        max_position_embeddings: 8,
      }),
    ).toMatchObject({
      wordEmbedProjDim: 64,
      doLayerNormBefore: true,
      activation: 'relu',
      enableBias: true,
      tieWordEmbeddings: true,
      padTokenId: 1,
    });
  });

  it('falls back to architectures when model_type is absent', () => {
    const { model_type, ...rest } = optRaw;
    expect(parseConfig(rest).family).toBe('opt');
  });

  it('qwen2: q/k/v bias, no o_proj bias', () => {
    const cfg = parseConfig({ ...tinyRaw, model_type: 'qwen2', attention_bias: undefined });
    expect(cfg).toMatchObject({ modelType: 'qwen2', attentionBias: true, attentionOutBias: false });
    const shapes = expectedTensorShapes(cfg);
    expect(shapes.get('model.layers.1.self_attn.k_proj.bias')).toEqual([64]);
    expect(shapes.has('model.layers.1.self_attn.o_proj.bias')).toBe(false);
  });

  it('llama attention_bias: bias on q, k, v and o_proj (as LlamaAttention builds them)', () => {
    const shapes = expectedTensorShapes(parseConfig({ ...tinyRaw, attention_bias: true, mlp_bias: true }));
    expect(shapes.get('model.layers.0.self_attn.q_proj.bias')).toEqual([128]);
    expect(shapes.get('model.layers.0.self_attn.o_proj.bias')).toEqual([128]);
    expect(shapes.get('model.layers.0.mlp.down_proj.bias')).toEqual([128]);
  });

  it('mistral: explicit head_dim, usable length capped at the sliding window', () => {
    const cfg = parseConfig({ ...tinyRaw, model_type: 'mistral', head_dim: 32, sliding_window: 256 });
    expect(cfg).toMatchObject({ modelType: 'mistral', headDim: 32, maxPositions: 256 });
    expect(expectedTensorShapes(cfg).get('model.layers.0.self_attn.q_proj.weight')).toEqual([256, 128]);
    expect(parseConfig({ ...tinyRaw, model_type: 'mistral', sliding_window: null }).maxPositions).toBe(512);
  });

  it('llama 3 style eos list keeps the first id', () => {
    expect(parseConfig({ ...tinyRaw, eos_token_id: [7, 9] }).eosTokenId).toBe(7);
  });
});

describe('config errors name config.json and the field', () => {
  it.each([
    [
      { model_type: 'gpt_neox', architectures: ['GPTNeoXForCausalLM'] },
      'config.json: model_type: "gpt_neox" is not supported (supported: llama, mistral, qwen2, qwen3, opt)',
    ],
    [
      { model_type: undefined, architectures: ['GPTNeoXForCausalLM'] },
      'config.json: architectures: ["GPTNeoXForCausalLM"] names no supported model and model_type is missing (supported: llama, mistral, qwen2, qwen3, opt)',
    ],
    [{ hidden_size: undefined }, 'config.json: hidden_size: missing; expected an integer in [1, 131072]'],
    [{ hidden_size: '128' }, 'config.json: hidden_size: expected an integer in [1, 131072], got "128"'],
    [{ num_hidden_layers: 0 }, 'config.json: num_hidden_layers: expected an integer in [1, 1024], got 0'],
    [{ num_hidden_layers: 1e9 }, 'config.json: num_hidden_layers: expected an integer in [1, 1024], got 1000000000'],
    [{ hidden_size: 1 << 20 }, 'config.json: hidden_size: expected an integer in [1, 131072], got 1048576'],
    [
      { intermediate_size: 1e12 },
      'config.json: intermediate_size: expected an integer in [1, 524288], got 1000000000000',
    ],
    [{ vocab_size: 1e8 }, 'config.json: vocab_size: expected an integer in [1, 4194304], got 100000000'],
    [{ vocab_size: 0 }, 'config.json: vocab_size: expected an integer in [1, 4194304], got 0'],
    [
      { max_position_embeddings: 0 },
      'config.json: max_position_embeddings: expected an integer in [1, 16777216], got 0',
    ],
    [
      { max_position_embeddings: 1e9 },
      'config.json: max_position_embeddings: expected an integer in [1, 16777216], got 1000000000',
    ],
    [{ num_attention_heads: 4096 }, 'config.json: num_attention_heads: expected an integer in [1, 1024], got 4096'],
    [{ head_dim: 4096 }, 'config.json: head_dim: expected an integer in [1, 2048], got 4096'],
    [{ rms_norm_eps: -1e-6 }, 'config.json: rms_norm_eps: expected a finite number > 0, got -0.000001'],
    [{ rms_norm_eps: 0 }, 'config.json: rms_norm_eps: expected a finite number > 0, got 0'],
    [{ rope_theta: 0 }, 'config.json: rope_theta: expected a finite number >= 1, got 0'],
    [{ rope_theta: 5e-324 }, 'config.json: rope_theta: expected a finite number >= 1, got 5e-324'],
    [{ rope_theta: -10000 }, 'config.json: rope_theta: expected a finite number >= 1, got -10000'],
    [
      { eos_token_id: 2048 },
      'config.json: eos_token_id: expected a token id in [0, 2047] (vocab_size 2048), a list of them, or null, got 2048',
    ],
    [
      { hidden_size: 'x'.repeat(1000) },
      `config.json: hidden_size: expected an integer in [1, 131072], got "${'x'.repeat(40)}..."`,
    ],
    [
      { num_hidden_layers: [1, 2, 3, 4, 5] },
      'config.json: num_hidden_layers: expected an integer in [1, 1024], got a list of 5',
    ],
    [{ rms_norm_eps: 'small' }, 'config.json: rms_norm_eps: expected a finite number > 0, got "small"'],
    [{ tie_word_embeddings: 1 }, 'config.json: tie_word_embeddings: expected true or false, got 1'],
    [{ num_key_value_heads: 3 }, 'config.json: num_key_value_heads: 3 does not divide num_attention_heads 8'],
    [{ num_attention_heads: 3 }, 'config.json: num_attention_heads: 3 does not divide hidden_size 128'],
    [
      { hidden_size: 72 },
      'config.json: num_attention_heads: 8 gives head_dim 9 (hidden_size 72 / 8), odd; RoPE needs an even head_dim',
    ],
    [{ head_dim: 15 }, 'config.json: head_dim: 15 is odd; RoPE needs an even head_dim'],
    [{ hidden_act: 'gelu' }, 'config.json: hidden_act: expected one of silu, got "gelu"'],
    [
      { rope_scaling: { type: 'yarn', factor: 2 } },
      'config.json: rope_scaling.type: expected one of default, linear, dynamic, llama3, got "yarn"',
    ],
    [
      { rope_scaling: { rope_type: 'llama3', factor: 8 } },
      'config.json: rope_scaling.low_freq_factor: missing; expected a finite number > 0',
    ],
    [
      { bos_token_id: -1 },
      'config.json: bos_token_id: expected a token id in [0, 2047] (vocab_size 2048), a list of them, or null, got -1',
    ],
  ])('llama %j', (change, message) => {
    expect(inputErrorMessage(() => parseConfig({ ...tinyRaw, ...change }))).toBe(message);
  });

  it.each([
    [{ activation_function: 'silu' }, 'config.json: activation_function: expected one of relu, gelu, got "silu"'],
    [{ ffn_dim: 2.5 }, 'config.json: ffn_dim: expected an integer in [1, 524288], got 2.5'],
    [{ num_hidden_layers: 1e9 }, 'config.json: num_hidden_layers: expected an integer in [1, 1024], got 1000000000'],
    [{ word_embed_proj_dim: -64 }, 'config.json: word_embed_proj_dim: expected an integer in [1, 131072], got -64'],
    [
      { pad_token_id: 50272 },
      'config.json: pad_token_id: expected a token id in [0, 50271] (vocab_size 50272), a list of them, or null, got 50272',
    ],
    [{ _remove_final_layer_norm: true }, 'config.json: _remove_final_layer_norm: true is not supported'],
  ])('opt %j', (change, message) => {
    expect(inputErrorMessage(() => parseConfig({ ...optRaw, ...change }))).toBe(message);
  });

  it('qwen2 sliding window: layers from max_window_layers on attend within it, so the usable length is capped there', () => {
    const windowed = { ...tinyRaw, model_type: 'qwen2', use_sliding_window: true, sliding_window: 256 };
    expect(parseConfig({ ...windowed, max_window_layers: 1 }).maxPositions).toBe(256);
    expect(parseConfig(windowed).maxPositions).toBe(512); // max_window_layers 28: no layer of 2 is windowed
  });

  it('readConfig: missing or malformed config.json', () => {
    expect(inputErrorMessage(() => readConfig(tmp))).toBe(`${path.join(tmp, 'config.json')}: file: not found`);
    fs.writeFileSync(path.join(tmp, 'config.json'), '{"model_type": "llama",');
    expect(inputErrorMessage(() => readConfig(tmp))).toMatch(/config\.json: file: not valid JSON/);
    // never the file's text (V8's own message quotes it: `Unexpected token 'h', "hf_secret"... is not valid JSON`)
    fs.writeFileSync(path.join(tmp, 'config.json'), 'hf_secret_token_1234');
    expect(inputErrorMessage(() => readConfig(tmp))).toBe(
      `${path.join(tmp, 'config.json')}: file: not valid JSON (unexpected character)`,
    );
    fs.writeFileSync(path.join(tmp, 'config.json'), '{\n  "hidden_size": 128,\n  "secret": "hf_abc\u0001"\n}');
    expect(inputErrorMessage(() => readConfig(tmp))).toBe(
      `${path.join(tmp, 'config.json')}: file: not valid JSON (bad control character in string literal at line 3, column 20)`,
    );
    fs.writeFileSync(path.join(tmp, 'config.json'), '[]');
    expect(inputErrorMessage(() => readConfig(tmp))).toMatch(/config\.json: file: expected a JSON object/);
  });
});

describe('expectedTensorShapes', () => {
  it('lists exactly the tensors of the real TinyStories checkpoint (embedding stored as lm_head)', () => {
    const ckpt = openCheckpoint(tinyStoriesDir);
    const shapes = expectedTensorShapes(readConfig(tinyStoriesDir));
    const stored = new Set(ckpt.names());
    const resolved = [...shapes.keys()].map((n) => resolveTensorName(stored, n));
    expect(new Set(resolved)).toEqual(stored);
    for (const [name, shape] of shapes) expect(ckpt.info(resolveTensorName(stored, name)!).shape).toEqual(shape);
    ckpt.close();
  });

  it('lists exactly the tensors of the real OPT checkpoint, plus the optional tied lm_head', () => {
    const ckpt = openCheckpoint(optTinyDir);
    const shapes = expectedTensorShapes(readConfig(optTinyDir));
    expect(new Set(ckpt.names())).toEqual(new Set([...shapes.keys()].filter((n) => n !== 'lm_head.weight')));
    for (const name of ckpt.names()) expect(ckpt.info(name).shape).toEqual(shapes.get(name));
    ckpt.close();
  });

  it('matches the published parameter counts of OPT-125m and LLaMA-7B', () => {
    const opt = expectedTensorShapes(parseConfig(preset('opt-125m')));
    opt.delete('lm_head.weight'); // tied
    expect(numel(opt)).toBe(125_239_296);
    const llama = expectedTensorShapes(parseConfig(preset('llama-7b')));
    expect(llama.size).toBe(291);
    expect(numel(llama)).toBe(6_738_415_616);
  });

  it('OPT-350m layout: project_in/out, no final layer norm when post-LN', () => {
    const cfg = parseConfig({
      ...preset('opt-125m'),
      hidden_size: 1024,
      word_embed_proj_dim: 512,
      ffn_dim: 4096,
      num_attention_heads: 16,
      num_hidden_layers: 1,
      do_layer_norm_before: false,
    });
    const shapes = expectedTensorShapes(cfg);
    expect(shapes.get('model.decoder.embed_tokens.weight')).toEqual([50272, 512]);
    expect(shapes.get('model.decoder.embed_positions.weight')).toEqual([2050, 1024]);
    expect(shapes.get('model.decoder.project_in.weight')).toEqual([1024, 512]);
    expect(shapes.get('model.decoder.project_out.weight')).toEqual([512, 1024]);
    expect(shapes.has('model.decoder.project_in.bias')).toBe(false);
    expect(shapes.has('model.decoder.final_layer_norm.weight')).toBe(false);
    expect(shapes.get('model.decoder.layers.0.final_layer_norm.bias')).toEqual([1024]);
  });

  it('OPT without biases or layer-norm affine parameters', () => {
    const shapes = expectedTensorShapes(
      parseConfig({ ...optRaw, enable_bias: false, layer_norm_elementwise_affine: false }),
    );
    expect([...shapes.keys()].filter((n) => n.endsWith('.bias') || n.includes('layer_norm'))).toEqual([]);
  });
});

describe('resolveTensorName', () => {
  it('accepts names without the model. prefix and the tied-embedding alias', () => {
    expect(resolveTensorName(new Set(['decoder.layers.0.fc1.weight']), 'model.decoder.layers.0.fc1.weight')).toBe(
      'decoder.layers.0.fc1.weight',
    );
    expect(resolveTensorName(new Set(['layers.0.mlp.up_proj.weight']), 'model.layers.0.mlp.up_proj.weight')).toBe(
      'layers.0.mlp.up_proj.weight',
    );
    expect(resolveTensorName(new Set(['lm_head.weight']), 'model.embed_tokens.weight')).toBe('lm_head.weight');
    expect(
      resolveTensorName(new Set(['model.embed_tokens.weight', 'lm_head.weight']), 'model.embed_tokens.weight'),
    ).toBe('model.embed_tokens.weight');
    expect(resolveTensorName(new Set(['x']), 'model.norm.weight')).toBeUndefined();
  });
});

describe('checkTensors', () => {
  const tiny = parseConfig(tinyRaw);

  it('passes the real checkpoints', () => {
    for (const dir of [tinyStoriesDir, optTinyDir]) {
      const ckpt = openCheckpoint(dir);
      expect(() => checkTensors(ckpt.path, readConfig(dir), ckpt)).not.toThrow();
      ckpt.close();
    }
  });

  it('a wrong shape', () => {
    const index = indexOf(tiny, (m) =>
      m.set('model.layers.0.self_attn.q_proj.weight', { dtype: 'F32', shape: [64, 128] }),
    );
    expect(inputErrorMessage(() => checkTensors('model.safetensors', tiny, index))).toBe(
      'model.safetensors: model.layers.0.self_attn.q_proj.weight: shape [64,128] does not match config (expected [128,128])',
    );
  });

  it('a missing tensor', () => {
    const index = indexOf(tiny, (m) => m.delete('model.layers.1.mlp.up_proj.weight'));
    expect(inputErrorMessage(() => checkTensors('model.safetensors', tiny, index))).toBe(
      'model.safetensors: model.layers.1.mlp.up_proj.weight: missing (expected shape [384,128] from config.json)',
    );
  });

  it('an untied model needs its own embedding and lm_head', () => {
    const untied = parseConfig({ ...tinyRaw, tie_word_embeddings: false });
    const index = indexOf(untied, (m) => m.delete('model.embed_tokens.weight'));
    expect(inputErrorMessage(() => checkTensors('m.safetensors', untied, index))).toMatch(
      /model\.embed_tokens\.weight: missing/,
    );
    const noHead = indexOf(untied, (m) => m.delete('lm_head.weight'));
    expect(inputErrorMessage(() => checkTensors('m.safetensors', untied, noHead))).toMatch(/lm_head\.weight: missing/);
  });

  it('tensors the model does not use are refused, naming them, with the layer count when that is the cause', () => {
    const extra = indexOf(tiny, (m) =>
      m.set('model.layers.0.self_attn.rotary_emb.inv_freq', { dtype: 'F32', shape: [8] }),
    );
    expect(inputErrorMessage(() => checkTensors('model.safetensors', tiny, extra))).toBe(
      'model.safetensors: tensors: 1 tensor(s) the model does not use: model.layers.0.self_attn.rotary_emb.inv_freq',
    );
    const fewer = parseConfig({ ...tinyRaw, num_hidden_layers: 1 });
    expect(inputErrorMessage(() => checkTensors('model.safetensors', fewer, indexOf(tiny)))).toBe(
      'model.safetensors: tensors: 9 tensor(s) the model does not use: model.layers.1.self_attn.q_proj.weight, ' +
        'model.layers.1.self_attn.k_proj.weight, model.layers.1.self_attn.v_proj.weight, ' +
        'model.layers.1.self_attn.o_proj.weight, model.layers.1.mlp.gate_proj.weight and 4 more ' +
        '(the checkpoint has layers 0..1, config.json num_hidden_layers is 1)',
    );
    // the names a packed loader reads are not unused
    const packed = indexOf(tiny, (m) => m.set('model.layers.0.mlp.up_proj.qweight', { dtype: 'U8', shape: [1] }));
    expect(() =>
      checkTensors('m', tiny, packed, new Set(), new Set(['model.layers.0.mlp.up_proj.qweight'])),
    ).not.toThrow();
  });

  it('an integer tensor where weights belong', () => {
    const index = indexOf(tiny, (m) => m.set('model.norm.weight', { dtype: 'I32', shape: [128] }));
    expect(inputErrorMessage(() => checkTensors('model.safetensors', tiny, index))).toBe(
      'model.safetensors: model.norm.weight: dtype I32 is not a float type',
    );
  });
});
