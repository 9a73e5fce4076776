/**
 * A checkpoint of a real model's shapes with random weights, in Hugging Face format: config.json from
 * configs/models/NAME.json (optionally with other sizes: layers, widths, heads; checked by parseConfig, so a
 * size the model code cannot run, such as an odd RoPE head_dim, is refused), the weights with N(0, std²)
 * matrices and embeddings (std 0.02 by default, the HF initializer_range; larger values give a random model
 * whose predictions are far from uniform), norm weights 1 and biases 0, and the tokenizer files where the
 * project has them (GPT-2 BPE for OPT, TinyStories' tokenizer.json).
 *
 * The weights are made and written one tensor at a time, in chunks converted to the stored dtype as they are
 * drawn, so memory holds one stored tensor (262 MB for llama-7b's embedding in F16), not the model. They go into
 * model.safetensors, or shards of at most `shardBytes` with model.safetensors.index.json as save_pretrained
 * writes them (src/io/checkpoint-shards.ts; the default 10 GB gives llama-7b's two shards). Each random tensor
 * draws from its own place in the seed's one stream (Rng.skip), in the model's tensor order, so the values do
 * not depend on the sharding or the order the files are written in.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeDirAtomic } from '../io/checkpoint-write.js';
import { DEFAULT_SHARD_BYTES, writeShardedCheckpoint } from '../io/checkpoint-shards.js';
import { f32ToBf16Array, f32ToF16Array } from '../io/dtype.js';
import type { TensorToCopy } from '../io/safetensors-write.js';
import { sharedDataDir } from '../io/text-data.js';
import { numel } from '../tensor/tensor.js';
import { expectedTensorShapes, headTensorNames } from './checkpoint-tensors.js';
import { familyOfModelType, parseConfig } from './families/registry.js';
import type { SizeOption } from './families/spec.js';
import { OptionError } from '../errors.js';
import { packageRoot } from '../util/package-root.js';
import { Rng } from '../util/rng.js';

export const PRESETS = [
  'opt-125m',
  'opt-1.3b',
  'llama-7b',
  'llama-3.1-8b',
  'mistral-7b-v0.1',
  'qwen2-0.5b',
  'qwen2.5-0.5b',
  'qwen3-0.6b',
  'tinystories-656k',
] as const;
export type Preset = (typeof PRESETS)[number];

const DEFAULT_INIT_STD = 0.02;

/** Where each preset's tokenizer comes from (relative to the shared data dir); the empty ones have none here. */
const TOKENIZER_FILES: Record<Preset, string[]> = {
  'opt-125m': ['tokenizers/gpt2/vocab.json', 'tokenizers/gpt2/merges.txt'],
  'opt-1.3b': ['tokenizers/gpt2/vocab.json', 'tokenizers/gpt2/merges.txt'],
  'llama-7b': [],
  'llama-3.1-8b': [],
  'mistral-7b-v0.1': [],
  'qwen2-0.5b': [],
  'qwen2.5-0.5b': [],
  'qwen3-0.6b': [],
  'tinystories-656k': ['models/tinystories-656k/tokenizer.json', 'models/tinystories-656k/tokenizer_config.json'],
};

/** Sizes that replace the preset's (each a positive integer; the family spec says which config keys each sets). */
export type SizeOverrides = Partial<Record<SizeOption, number>>;

export interface InitRandomOptions extends SizeOverrides {
  like: Preset;
  out: string;
  seed?: number;
  /** Standard deviation of the random matrices and embeddings (default 0.02). */
  initStd?: number;
  dtype?: StoredDtype;
  /** The largest shard in bytes (default 10 GB); a model that fits is written as one model.safetensors. */
  shardBytes?: number;
  /** The command writing `out`, recorded in its marker (src/io/output-dir.ts). */
  writtenBy?: string;
}

/** The config.json keys each override sets, per family. OPT's word_embed_proj_dim follows hidden_size: the
 * presets have none of their own (no project_in / project_out); OPT has no separate key/value heads. */
/** Each size option by its Hugging Face name, for errors. */
const SIZE_NAMES: Record<SizeOption, string> = {
  layers: 'num_hidden_layers',
  hiddenSize: 'hidden_size',
  intermediateSize: 'intermediate_size',
  numHeads: 'num_attention_heads',
  numKvHeads: 'num_key_value_heads',
  headDim: 'head_dim',
};

/** Applies the overrides to raw; returns them as "key value" phrases (the config's label in errors). */
function applySizes(raw: Record<string, unknown>, like: Preset, sizes: SizeOverrides): string[] {
  const spec = familyOfModelType(raw.model_type);
  if (spec === undefined)
    throw new Error(`configs/models/${like}.json: model_type ${String(raw.model_type)} has no family spec`);
  const changes: string[] = [];
  for (const [option, value] of Object.entries(sizes) as [SizeOption, number | undefined][]) {
    if (value === undefined) continue;
    const keys = spec.sizeKeys[option];
    if (keys === undefined)
      throw new OptionError(like, `${String(raw.model_type)} models have no ${SIZE_NAMES[option]}`);
    for (const key of keys) raw[key] = value;
    changes.push(`${keys[0]} ${value}`);
  }
  return changes;
}

type StoredDtype = 'F32' | 'F16' | 'BF16';

/** Elements drawn and converted at a time (even, so Box-Muller's pairs never straddle two chunks). */
const CHUNK = 1 << 20;

/** How one tensor is filled: zeros (biases), ones (norm weights) or N(0, std²) drawn from `state` on. */
interface Fill {
  kind: 'zeros' | 'ones' | 'gaussian';
  state: number;
}

/** Draws `out.length` normals from rng (Box-Muller: two independent normals from two uniforms). */
function gaussianInto(rng: Rng, out: Float32Array, std: number): void {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.next())) * std;
    const theta = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
  }
}

/** The fill of each tensor, in order: a random one takes the next 2 ceil(n / 2) draws of the stream. */
function planFills(shapes: [string, number[]][], seed: number): Fill[] {
  const rng = new Rng(seed);
  return shapes.map(([name, shape]) => {
    if (name.endsWith('.bias')) return { kind: 'zeros', state: 0 };
    if (shape.length === 1) return { kind: 'ones', state: 0 };
    return { kind: 'gaussian', state: rng.skip(2 * Math.ceil(numel(shape) / 2)) };
  });
}

/** The stored bytes of a tensor of n elements filled by `fill`, made chunk by chunk. */
function storedValues(fill: Fill, n: number, dtype: StoredDtype, std: number): Uint8Array {
  const out = dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n);
  const rng = new Rng(fill.state);
  const chunk = new Float32Array(Math.min(CHUNK, n));
  for (let at = 0; at < n; at += CHUNK) {
    const part = chunk.subarray(0, Math.min(CHUNK, n - at));
    if (fill.kind === 'gaussian') gaussianInto(rng, part, std);
    else part.fill(fill.kind === 'ones' ? 1 : 0);
    out.set(dtype === 'F32' ? part : dtype === 'F16' ? f32ToF16Array(part) : f32ToBf16Array(part), at);
  }
  return new Uint8Array(out.buffer);
}

/** Returns the files written. */
export function initRandom({
  like,
  out,
  seed = 0,
  dtype,
  initStd = DEFAULT_INIT_STD,
  shardBytes = DEFAULT_SHARD_BYTES,
  writtenBy,
  ...sizes
}: InitRandomOptions): string[] {
  const raw = JSON.parse(
    fs.readFileSync(path.join(packageRoot(), 'configs', 'models', `${like}.json`), 'utf8'),
  ) as Record<string, unknown>;
  const changes = applySizes(raw, like, sizes);
  const config = parseConfig(
    raw,
    `configs/models/${like}.json${changes.length > 0 ? ` with ${changes.join(', ')}` : ''}`,
  );
  const storeAs = dtype ?? (raw.torch_dtype === 'float32' ? 'F32' : raw.torch_dtype === 'bfloat16' ? 'BF16' : 'F16');
  const shapes = [...expectedTensorShapes(config)].filter(
    ([name]) => !(name === headTensorNames(config).lmHead && config.tieWordEmbeddings),
  );
  const fills = planFills(shapes, seed);
  const tensors: TensorToCopy[] = shapes.map(([name, shape], i) => ({
    name,
    dtype: storeAs,
    shape,
    read: () => storedValues(fills[i], numel(shape), storeAs, initStd),
  }));
  const written = writeDirAtomic(
    out,
    (tmp) => {
      fs.writeFileSync(
        path.join(tmp, 'config.json'),
        `${JSON.stringify({ ...raw, torch_dtype: dtypeName(storeAs) }, null, 2)}\n`,
      );
      const weights = writeShardedCheckpoint(tmp, tensors, shardBytes);
      for (const rel of TOKENIZER_FILES[like])
        fs.copyFileSync(path.join(sharedDataDir(), rel), path.join(tmp, path.basename(rel)));
      return ['config.json', ...weights, ...TOKENIZER_FILES[like].map((rel) => path.basename(rel))];
    },
    writtenBy,
  );
  return written.map((f) => path.join(out, f));
}

function dtypeName(d: StoredDtype): string {
  return { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[d];
}
