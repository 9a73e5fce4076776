/**
 * config.json rules of the Llama-architecture families: the new presets' tensor counts against the published
 * parameter totals, rope_scaling's accepted types and the one-line errors for the others and for bad fields,
 * the usable length under scaling and sliding windows (and the error naming its source), Qwen2's
 * max_window_layers, Qwen3's defaults, and the refusal of Gemma 2 with its reason.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedTensorShapes } from '../../src/models/checkpoint-tensors.js';
import { parseConfig } from '../../src/models/families/registry.js';
import type { LlamaConfig } from '../../src/models/llama.js';
import { positionsProblem } from '../../src/models/model.js';
import { inputErrorMessage } from '../helpers/errors.js';
import { repoRoot } from '../helpers/paths.js';

const preset = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(repoRoot, 'configs/models', `${name}.json`), 'utf8')) as Record<string, unknown>;
const numel = (shapes: Map<string, number[]>) =>
  [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
const llama31 = preset('llama-3.1-8b');
const parse = (raw: Record<string, unknown>) => parseConfig(raw) as LlamaConfig;

describe('presets', () => {
  it.each([
    // model card totals; tied models store no lm_head
    ['llama-3.1-8b', 8_030_261_248],
    ['mistral-7b-v0.1', 7_241_732_096],
    ['qwen2.5-0.5b', 494_032_768],
    ['qwen3-0.6b', 596_049_920],
  ])('%s has the published parameter count', (name, total) => {
    const config = parseConfig(preset(name));
    const shapes = expectedTensorShapes(config);
    if (config.tieWordEmbeddings) shapes.delete('lm_head.weight');
    expect(numel(shapes)).toBe(total);
  });
});

describe('rope_scaling', () => {
  it('llama3, linear and dynamic (rope_type or legacy type); null and default are plain', () => {
    expect(parse(llama31).ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
    expect(parse({ ...llama31, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling).toEqual({
      type: 'linear',
      factor: 2,
    });
    expect(parse({ ...llama31, rope_scaling: { rope_type: 'dynamic', factor: 2 } }).ropeScaling).toEqual({
      type: 'dynamic',
      factor: 2,
      maxPositionEmbeddings: 131072,
    });
    for (const plain of [null, { rope_type: 'default' }])
      expect(parse({ ...llama31, rope_scaling: plain }).ropeScaling).toEqual({ type: 'default' });
  });

  it('linear and dynamic extend the usable length by their factor (as vLLM), llama3 keeps max_position_embeddings', () => {
    const short = { ...llama31, max_position_embeddings: 4096 };
    const linear = parse({ ...short, rope_scaling: { type: 'linear', factor: 2.5 } });
    expect(linear.maxPositions).toBe(10240);
    expect(positionsProblem(linear, 10241)).toBe(
      "10241 positions exceed the model's limit of 10240 positions (config.json max_position_embeddings × rope_scaling.factor)",
    );
    expect(parse(short).maxPositions).toBe(4096);
    expect(parse({ ...short, rope_scaling: null }).maxPositions).toBe(4096);
  });

  it.each([
    [
      { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 },
      'rope_scaling.rope_type: expected one of default, linear, dynamic, llama3, got "yarn"',
    ],
    [
      { type: 'su', short_factor: [1] },
      'rope_scaling.type: expected one of default, linear, dynamic, llama3, got "su"',
    ],
    [
      { rope_type: 'longrope' },
      'rope_scaling.rope_type: expected one of default, linear, dynamic, llama3, got "longrope"',
    ],
    [{}, 'rope_scaling.rope_type: missing; expected one of default, linear, dynamic, llama3'],
    ['linear', 'rope_scaling: expected an object, got "linear"'],
    [{ rope_type: 'linear' }, 'rope_scaling.factor: missing; expected a finite number >= 1'],
    [{ rope_type: 'linear', factor: 0.5 }, 'rope_scaling.factor: expected a finite number >= 1, got 0.5'],
    [
      { rope_type: 'dynamic', factor: 1e6 },
      'rope_scaling.factor: 1000000 extends max_position_embeddings 131072 beyond 16777216 positions',
    ],
    [{ rope_type: 'llama3', factor: 8 }, 'rope_scaling.low_freq_factor: missing; expected a finite number > 0'],
    [
      {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 4,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
      'rope_scaling.high_freq_factor: 4 must be greater than low_freq_factor 4',
    ],
    [
      { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 },
      'rope_scaling.original_max_position_embeddings: missing; expected an integer in [1, 16777216]',
    ],
  ])('%j is refused', (scaling, message) => {
    expect(inputErrorMessage(() => parseConfig({ ...llama31, rope_scaling: scaling }))).toBe(`config.json: ${message}`);
  });
});

describe('sliding windows and family defaults', () => {
  it('mistral v0.1: usable length is sliding_window, and the error names it', () => {
    const c = parse(preset('mistral-7b-v0.1'));
    expect(c.maxPositions).toBe(4096);
    expect(positionsProblem(c, 4097)).toBe(
      "4097 positions exceed the model's limit of 4096 positions (config.json sliding_window; attention beyond the window is not implemented)",
    );
    // v0.3: no window
    expect(parse({ ...preset('mistral-7b-v0.1'), sliding_window: null }).maxPositions).toBe(32768);
  });

  it('qwen2.5: the window counts only with use_sliding_window and layers from max_window_layers on', () => {
    const q = preset('qwen2.5-0.5b');
    expect(parse(q).maxPositions).toBe(32768);
    expect(parse({ ...q, use_sliding_window: true, sliding_window: 1024 }).maxPositions).toBe(32768); // 24 of 24
    expect(parse({ ...q, use_sliding_window: true, sliding_window: 1024, max_window_layers: 12 }).maxPositions).toBe(
      1024,
    );
  });

  it('qwen3: q/k norm, head_dim 128 by default, attention_bias on q, k, v and o', () => {
    const { head_dim: _, ...noHeadDim } = preset('qwen3-0.6b');
    const c = parse({ ...noHeadDim, hidden_size: 512, attention_bias: true });
    expect(c).toMatchObject({
      qkNorm: true,
      headDim: 128,
      attentionBias: true,
      attentionOutBias: true,
      mlpBias: false,
    });
    const shapes = expectedTensorShapes(c);
    expect(shapes.get('model.layers.3.self_attn.q_norm.weight')).toEqual([128]);
    expect(shapes.get('model.layers.3.self_attn.k_norm.weight')).toEqual([128]);
    expect(shapes.get('model.layers.3.self_attn.o_proj.bias')).toEqual([512]);
    expect(expectedTensorShapes(parse(preset('qwen2.5-0.5b'))).has('model.layers.0.self_attn.q_norm.weight')).toBe(
      false,
    );
  });

  it('gemma2 is refused with the reason', () => {
    expect(inputErrorMessage(() => parseConfig({ ...llama31, model_type: 'gemma2' }))).toBe(
      'config.json: model_type: "gemma2" is not supported: Gemma 2 needs attention-logit soft-capping (tanh of the scaled scores inside softmax), which the CPU and GPU attention kernels do not do',
    );
  });
});
