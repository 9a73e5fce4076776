/**
 * The Llama-architecture families on random checkpoints of their real configs (configs/models/*.json through
 * init-random, with small sizes): Llama 3.1 (rope_scaling llama3), linear and dynamic RoPE scaling, Mistral v0.1
 * (sliding window), Qwen2.5 (q/k/v biases) and Qwen3 (q/k norm). Each loads, gives the logits of a float64
 * reference forward written for the test (./llama-reference.ts, with the inverse frequencies computed here from
 * transformers' formulas) within 1e-4 of their scale, and quantizes (OWQ) and trains 2 WCT steps with a finite
 * loss and deltas that reload to the trained model. Dynamic NTK is also checked under the KV cache, step by step.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { causalExample } from '../../src/data/example.js';
import type { Dataset } from '../../src/data/dataset.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import type { LlamaConfig } from '../../src/models/llama.js';
import { initRandom, type Preset } from '../../src/models/init-random.js';
import { readConfig } from '../../src/models/families/registry.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { applyWeakDeltas, weakColumnsOf } from '../../src/models/weak-deltas.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { RunLog } from '../../src/train/run-log.js';
import { train } from '../../src/train/trainer.js';
import { weakParameters } from '../../src/train/wct.js';
import { Rng } from '../../src/util/rng.js';
import { testTrainConfig } from '../helpers/train-config.js';
import { ReferenceLlama } from './llama-reference.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-model-families-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SIZES = { layers: 2, hiddenSize: 64, intermediateSize: 96, numHeads: 4, numKvHeads: 2, headDim: 16 };
const rng = new Rng(3);
const randomIds = (n: number, vocab: number) => Array.from({ length: n }, () => Math.floor(rng.next() * vocab));

/** Random checkpoints by preset, made once at SIZES. */
const made = new Map<Preset, string>();

/**
 * A random checkpoint like `preset` at SIZES, its config.json then changed by `edit` (RoPE fields only, so one
 * model.safetensors, hard-linked, serves every variant of a preset); made once per name.
 */
function checkpoint(name: string, like: Preset, edit: (raw: Record<string, unknown>) => void = () => {}): string {
  let base = made.get(like);
  if (base === undefined) {
    base = path.join(tmp, `${like}-base`);
    initRandom({ like, out: base, initStd: 0.15, ...SIZES });
    made.set(like, base);
  }
  const dir = path.join(tmp, name);
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(dir);
  fs.linkSync(path.join(base, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  const raw = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(raw);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw));
  return dir;
}

// The inverse frequencies as transformers' modeling_rope_utils computes them, in float64.
const plain = (D: number, theta: number) => Float64Array.from({ length: D / 2 }, (_, i) => theta ** (-(2 * i) / D));
function llama3(D: number, theta: number, s: { factor: number; low: number; high: number; original: number }) {
  return plain(D, theta).map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < s.original / s.high) return f;
    if (wavelen > s.original / s.low) return f / s.factor;
    const smooth = (s.original / wavelen - s.low) / (s.high - s.low);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}
const dynamic = (D: number, theta: number, factor: number, M: number) => (length: number) =>
  length <= M ? plain(D, theta) : plain(D, theta * (factor * (length / M) - (factor - 1)) ** (D / (D - 2)));

function reference(model: CausalLM, invFreq: (length: number) => Float64Array): ReferenceLlama {
  const c = model.config as LlamaConfig;
  return new ReferenceLlama(
    {
      layers: c.numLayers,
      hidden: c.hiddenSize,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      eps: c.rmsNormEps,
      qkNorm: c.qkNorm,
      tied: c.tieWordEmbeddings,
      invFreq,
      vocab: VOCAB_CHECKED,
    },
    model.parameters(),
  );
}

/** The logits compared: those of the first VOCAB_CHECKED tokens (the reference's lm_head is plain JS). */
const VOCAB_CHECKED = 2048;

/** max |a - b| over max |b|, a [T, V] against the reference's rows b [T][VOCAB_CHECKED]: the error relative to the logits' scale. */
function relativeError(a: ArrayLike<number>, b: number[][]): number {
  const V = a.length / b.length;
  let [err, scale] = [0, 0];
  b.forEach((row, t) => {
    for (let v = 0; v < row.length; v++) {
      err = Math.max(err, Math.abs(a[t * V + v] - row[v]));
      scale = Math.max(scale, Math.abs(row[v]));
    }
  });
  return err / scale;
}

const logitsOf = (model: CausalLM, ids: number[]) => model.forward(Int32Array.from(ids), { batch: 1 }).data;

/** Gives the named 1-d tensors (biases, norm weights) random values so that they matter. */
function randomize(model: CausalLM, suffix: RegExp, center: number): void {
  for (const [name, t] of model.parameters()) {
    if (!suffix.test(name)) continue;
    const d = t.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = center + (rng.next() - 0.5);
  }
}

/** Every norm weight (its values) by name: the block norms, the final norm, Qwen3's q/k head norms. */
const normsOf = (model: CausalLM) =>
  new Map([...model.parameters()].filter(([n]) => /norm\.weight$/.test(n)).map(([n, t]) => [n, Array.from(t.data)]));

/** OWQ at 4 bits over random calibration ids, then 2 WCT steps; returns the loss after and the reload check. */
async function quantizeAndTrain(dir: string, vocab: number) {
  const calib = path.join(dir, 'calib.json');
  fs.writeFileSync(calib, JSON.stringify({ windows: Array.from({ length: 4 }, () => randomIds(16, vocab)) }));
  const packed = `${dir}-owq`;
  await quantizeCheckpoint(
    dir,
    packed,
    quantizeOptions({ method: 'owq', wbits: 4, target_rank: 2, calib_tokens: calib, nsamples: 4, seqlen: 16 }),
    { force: false },
  );
  const model = loadModel(packed);
  const norms = normsOf(loadModel(dir));
  const packedNorms = normsOf(model);
  const examples = Array.from({ length: 6 }, () => causalExample(Int32Array.from(randomIds(12, vocab)), 1));
  const data: Dataset = {
    train: examples.slice(2),
    validation: examples.slice(0, 2),
    truncated: 0,
    dropped: 0,
    source: calib,
    tokens: 72,
  };
  const out = path.join(tmp, `${path.basename(dir)}-train`);
  const result = await train(
    model,
    weakParameters(model),
    data,
    testTrainConfig(out, { steps: 2, padId: 0 }),
    (resumeFromStep) => new RunLog({ dir: out, tensorboardDir: null, resumeFromStep }),
  );
  const deltas = path.join(out, 'weak_deltas.safetensors');
  writeWeakDeltas(deltas, weakColumnsOf(model), { baseSha256: checkpointSha256(packed), recipeHash: 'test', step: 2 });
  const ids = randomIds(8, vocab);
  const base = loadModel(packed);
  const before = Array.from(logitsOf(base, ids));
  applyWeakDeltas(base, deltas, packed);
  return {
    result,
    trained: Array.from(logitsOf(model, ids)),
    reloaded: Array.from(logitsOf(base, ids)),
    before,
    norms,
    packedNorms,
  };
}

interface Case {
  /** The checkpoint's directory name. */
  id: string;
  name: string;
  like: Preset;
  edit?: (raw: Record<string, unknown>) => void;
  /** What the loaded config must say. */
  config: Partial<LlamaConfig>;
  invFreq: (length: number) => Float64Array;
  /** Sequence length of the reference check (beyond max_position_embeddings where the scaling needs it). */
  length: number;
  prepare?: (model: CausalLM) => void;
}

const D = SIZES.headDim;
const CASES: Case[] = [
  {
    id: 'llama-3.1',
    name: 'llama-3.1-8b (rope_scaling llama3)',
    like: 'llama-3.1-8b',
    config: {
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      maxPositions: 131072,
    },
    invFreq: () => llama3(D, 500000, { factor: 8, low: 1, high: 4, original: 8192 }),
    length: 40,
  },
  {
    id: 'llama3-bands',
    name: 'llama3 with every band inside the sequence (original_max_position_embeddings 64)',
    like: 'llama-3.1-8b',
    edit: (raw) => {
      raw.rope_theta = 10000;
      raw.rope_scaling = {
        rope_type: 'llama3',
        factor: 4,
        low_freq_factor: 1,
        high_freq_factor: 8,
        original_max_position_embeddings: 64,
      };
    },
    config: { maxPositions: 131072 },
    invFreq: () => llama3(D, 10000, { factor: 4, low: 1, high: 8, original: 64 }),
    length: 40,
  },
  {
    id: 'linear',
    name: 'linear (legacy "type" key): positions / factor, the usable length times factor',
    like: 'llama-3.1-8b',
    edit: (raw) => {
      raw.rope_theta = 10000;
      raw.max_position_embeddings = 16;
      raw.rope_scaling = { type: 'linear', factor: 4 };
    },
    config: { ropeScaling: { type: 'linear', factor: 4 }, maxPositions: 64 },
    invFreq: () => plain(D, 10000).map((f) => f / 4),
    length: 40,
  },
  {
    id: 'dynamic',
    name: 'dynamic NTK beyond max_position_embeddings 16',
    like: 'llama-3.1-8b',
    edit: (raw) => {
      raw.rope_theta = 10000;
      raw.max_position_embeddings = 16;
      raw.rope_scaling = { rope_type: 'dynamic', factor: 4 };
    },
    config: { ropeScaling: { type: 'dynamic', factor: 4, maxPositionEmbeddings: 16 }, maxPositions: 64 },
    invFreq: dynamic(D, 10000, 4, 16),
    length: 40,
  },
  {
    id: 'mistral',
    name: 'mistral-7b-v0.1 (usable length capped at sliding_window 4096)',
    like: 'mistral-7b-v0.1',
    config: { modelType: 'mistral', maxPositions: 4096, ropeScaling: { type: 'default' } },
    invFreq: () => plain(D, 10000),
    length: 24,
  },
  {
    id: 'qwen2.5',
    name: 'qwen2.5-0.5b (q/k/v biases, tied embeddings)',
    like: 'qwen2.5-0.5b',
    config: {
      modelType: 'qwen2',
      attentionBias: true,
      attentionOutBias: false,
      tieWordEmbeddings: true,
      maxPositions: 32768,
    },
    invFreq: () => plain(D, 1000000),
    length: 24,
    prepare: (m) => randomize(m, /self_attn\.[qkv]_proj\.bias$/, 0),
  },
  {
    id: 'qwen3',
    name: 'qwen3-0.6b (q/k RMSNorm per head)',
    like: 'qwen3-0.6b',
    config: { modelType: 'qwen3', qkNorm: true, attentionBias: false, tieWordEmbeddings: true, maxPositions: 40960 },
    invFreq: () => plain(D, 1000000),
    length: 24,
    prepare: (m) => randomize(m, /self_attn\.[qk]_norm\.weight$/, 1),
  },
];

/** The checkpoint of case `id`, made on first use. */
function caseDir(id: string): string {
  const c = CASES.find((x) => x.id === id)!;
  return checkpoint(c.id, c.like, c.edit);
}

describe('Llama-architecture families on random checkpoints of their real configs', () => {
  for (const c of CASES) {
    it(`${c.name}: loads and matches the float64 reference`, () => {
      const model = loadModel(caseDir(c.id));
      expect(model.config).toMatchObject(c.config);
      c.prepare?.(model);
      const ids = randomIds(c.length, model.config.vocabSize);
      const err = relativeError(logitsOf(model, ids), reference(model, c.invFreq).run(ids));
      expect(err).toBeLessThan(1e-4);
    });
  }

  it.each(['llama3-bands', 'linear', 'dynamic'])(
    '%s matters: unscaled frequencies miss the reference by far more than the tolerance',
    (id) => {
      const model = loadModel(caseDir(id));
      const ids = randomIds(40, model.config.vocabSize);
      const err = relativeError(logitsOf(model, ids), reference(model, () => plain(D, 10000)).run(ids));
      expect(err).toBeGreaterThan(1e-2);
    },
  );

  it('dynamic NTK under the KV cache: each forward uses the frequencies of the length it reaches', () => {
    const model = loadModel(caseDir('dynamic'));
    const ref = reference(model, dynamic(D, 10000, 4, 16));
    const ids = randomIds(24, model.config.vocabSize);
    const cache = model.newCache(64);
    // prefill 12 (within max_position_embeddings), then one token at a time past it
    let last: number[] = [];
    for (const step of [ids.slice(0, 12), ...ids.slice(12).map((id) => [id])]) {
      const logits = model.forward(Int32Array.from(step), { batch: 1, cache }).data;
      const expected = ref.run(step);
      expect(relativeError(logits, expected)).toBeLessThan(1e-4);
      last = expected.at(-1)!;
    }
    // cached keys keep the rotation of their step: one forward over all 24 rotates every key by theta(24)
    const full = Array.from(logitsOf(model, ids)).slice(-model.config.vocabSize);
    expect(relativeError(full, [last])).toBeGreaterThan(1e-3);
  });
});

describe('quantize (OWQ, 4 bits) and train 2 WCT steps', () => {
  for (const id of ['llama-3.1', 'mistral', 'qwen2.5', 'qwen3']) {
    it(id, async () => {
      const dir = caseDir(id);
      const { result, trained, reloaded, before, norms, packedNorms } = await quantizeAndTrain(
        dir,
        readConfig(dir).vocabSize,
      );
      expect(Number.isFinite(result.valLossAfter)).toBe(true);
      expect(result.steps).toBe(2);
      expect(reloaded).toEqual(trained);
      expect(reloaded).not.toEqual(before);
      // the norms (Qwen3's q/k head norms among them) are left as they were
      expect(packedNorms.size).toBe(norms.size);
      expect(packedNorms).toEqual(norms);
    });
  }
});
