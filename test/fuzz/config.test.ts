/**
 * Fuzzing config.json (fast-check, fixed seeds, bounded runs): random and mutated configs of every family go through
 * the config reader and, when small enough, model construction and a forward pass. Every case must end in an
 * InputError or OptionError, or in a config that satisfies every documented bound and builds a model whose logits
 * are finite; never another exception, a hang or a huge allocation.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { asUserError } from '../../src/errors.js';
import { expectedTensorShapes } from '../../src/models/checkpoint-tensors.js';
import { SIZE_LIMITS } from '../../src/models/families/config-fields.js';
import { parseConfig, readConfig } from '../../src/models/families/registry.js';
import { buildModel } from '../../src/models/load.js';
import type { ModelConfig } from '../../src/models/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-fuzz-config-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Tiny configs of each family: the seeds the mutations start from. */
const TINY: Record<string, Record<string, unknown>> = {
  llama: {
    model_type: 'llama',
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 64,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
  },
  qwen2: {
    model_type: 'qwen2',
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    vocab_size: 48,
    max_position_embeddings: 16,
    use_sliding_window: false,
  },
  mistral: {
    model_type: 'mistral',
    hidden_size: 16,
    intermediate_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    head_dim: 4,
    vocab_size: 40,
    max_position_embeddings: 64,
    sliding_window: 8,
  },
  opt: {
    model_type: 'opt',
    hidden_size: 16,
    ffn_dim: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    vocab_size: 50,
    max_position_embeddings: 24,
    word_embed_proj_dim: 8,
    do_layer_norm_before: true,
    enable_bias: true,
    pad_token_id: 1,
  },
};

const KEYS = [
  ...new Set(Object.values(TINY).flatMap((c) => Object.keys(c))),
  'head_dim',
  'sliding_window',
  'rope_scaling',
  'hidden_act',
  'activation_function',
  'attention_bias',
  'mlp_bias',
  'layer_norm_elementwise_affine',
  'architectures',
  '_remove_final_layer_norm',
];

/** Values that break things: edge numbers, huge sizes, wrong types, and small sizes that keep a model buildable. */
const value = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 64 }) },
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0, -0, 1e9, 2 ** 31, 2 ** 53, 1e300, 0.5, 2.5, 1e-300, -1e-6, Number.NaN, Infinity, -Infinity),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.constantFrom('llama', 'qwen2', 'mistral', 'opt', 'gpt2', 'silu', 'gelu', 'relu', 'default', null, true, false),
  fc.constantFrom({ type: 'linear', factor: 2 }, { rope_type: 'default' }, [7, 9], [], ['LlamaForCausalLM']),
  fc.constant(undefined),
);

/** A tiny config with 1 to 5 keys set to fuzzed values (undefined: removed). */
const mutated = fc
  .tuple(
    fc.constantFrom(...Object.keys(TINY)),
    fc.array(fc.tuple(fc.constantFrom(...KEYS), value), { minLength: 1, maxLength: 5 }),
  )
  .map(([family, changes]) => {
    const raw: Record<string, unknown> = { ...TINY[family] };
    for (const [k, v] of changes) {
      if (v === undefined) delete raw[k];
      else raw[k] = v;
    }
    return raw;
  });

const SIZE_KEYS: [keyof ModelConfig | string, number][] = [
  ['hiddenSize', SIZE_LIMITS.width],
  ['numLayers', SIZE_LIMITS.layers],
  ['vocabSize', SIZE_LIMITS.vocab],
  ['maxPositions', SIZE_LIMITS.positions],
  ['intermediateSize', SIZE_LIMITS.mlpWidth],
  ['ffnDim', SIZE_LIMITS.mlpWidth],
  ['numHeads', SIZE_LIMITS.heads],
  ['numKvHeads', SIZE_LIMITS.heads],
  ['headDim', SIZE_LIMITS.headDim],
  ['wordEmbedProjDim', SIZE_LIMITS.width],
];

/** Every bound a parsed config promises. */
function expectValid(c: ModelConfig): void {
  const r = c as unknown as Record<string, unknown>;
  for (const [key, max] of SIZE_KEYS) {
    if (r[key] === undefined) continue;
    const v = r[key] as number;
    expect(Number.isInteger(v) && v >= 1 && v <= max, `${key} ${v}`).toBe(true);
  }
  if (r.rmsNormEps !== undefined) expect(Number.isFinite(r.rmsNormEps) && (r.rmsNormEps as number) > 0).toBe(true);
  if (r.ropeTheta !== undefined) expect(Number.isFinite(r.ropeTheta) && (r.ropeTheta as number) >= 1).toBe(true);
  const heads = r.numHeads as number;
  if (r.numKvHeads !== undefined) expect(heads % (r.numKvHeads as number)).toBe(0);
  if (r.headDim !== undefined) expect((r.headDim as number) % 2).toBe(0);
  else expect(c.hiddenSize % heads).toBe(0);
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Builds the model with random weights and runs a few tokens when the config is small. */
function buildAndRun(c: ModelConfig): void {
  const shapes = expectedTensorShapes(c);
  if ([...shapes.values()].reduce((n, s) => n + numel(s), 0) > 200_000) return;
  const rng = new Rng(1);
  const weights = new Map(
    [...shapes].map(([name, shape]) => [
      name,
      new Tensor(
        Float32Array.from({ length: numel(shape) }, () => (rng.next() - 0.5) * 0.2 + (shape.length === 1 ? 1 : 0)),
        shape,
      ),
    ]),
  );
  const model = buildModel(c, weights);
  const t = Math.min(4, c.maxPositions);
  const ids = Int32Array.from({ length: t }, (_, i) => i % c.vocabSize);
  const logits = model.forward(ids, { batch: 1 });
  expect(logits.shape).toEqual([1, t, c.vocabSize]);
  expect(logits.data.every(Number.isFinite)).toBe(true);
  const tooLong = Int32Array.from({ length: c.maxPositions + 1 }, () => 0);
  expect(() => model.forward(tooLong, { batch: 1 })).toThrow(/exceed the model's limit/);
}

/** Runs `f`; a thrown error must be an InputError or OptionError. */
function cleanOutcome(f: () => void): boolean {
  try {
    f();
  } catch (e) {
    if (asUserError(e) !== null) return true;
    throw e;
  }
  return true;
}

describe('fuzzed config.json', () => {
  it('mutated tiny configs: a user error, or a valid config that builds and runs', () => {
    fc.assert(
      fc.property(mutated, (raw) =>
        cleanOutcome(() => {
          const c = parseConfig(raw);
          expectValid(c);
          buildAndRun(c);
        }),
      ),
      { seed: 20260101, numRuns: 600 },
    );
  });

  it('random JSON objects: a user error or a valid config', () => {
    const raw = fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 6 })), value, { maxKeys: 20 });
    fc.assert(
      fc.property(raw, (r) => cleanOutcome(() => expectValid(parseConfig(r as Record<string, unknown>)))),
      { seed: 7, numRuns: 400 },
    );
  });

  it('config.json text with bytes changed: a user error or a valid config', () => {
    const text = JSON.stringify(TINY.llama, null, 2);
    const edit = fc.array(
      fc.tuple(
        fc.nat(text.length),
        fc.nat(3),
        fc.constantFrom('', '"', '{', '}', ',', ':', '0', '9', 'e', '-', '.', ' ', '\n', '\u0000', 'é'),
      ),
      { minLength: 1, maxLength: 4 },
    );
    const dir = path.join(tmp, 'text');
    fs.mkdirSync(dir);
    fc.assert(
      fc.property(edit, (edits) => {
        let t = text;
        for (const [at, del, insert] of edits) t = t.slice(0, at) + insert + t.slice(at + del);
        fs.writeFileSync(path.join(dir, 'config.json'), t);
        return cleanOutcome(() => expectValid(readConfig(dir)));
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it('huge sizes fail at once, before anything is allocated', () => {
    const started = performance.now();
    for (const key of [
      'num_hidden_layers',
      'hidden_size',
      'intermediate_size',
      'vocab_size',
      'max_position_embeddings',
    ])
      expect(() => parseConfig({ ...TINY.llama, [key]: 1e9 })).toThrow(
        new RegExp(`config\\.json: ${key}: expected an integer in \\[1, \\d+\\], got 1000000000`),
      );
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
