/**
 * Loads a Hugging Face checkpoint directory (config.json + model.safetensors or a sharded index) into a
 * CausalLM. Every tensor the config implies is checked for presence and shape before any is read; each
 * is then read once, straight into its own buffer (fp16/bf16 widened to fp32, the stored format kept as the
 * tensor's halfSource; f64 for gradient checks), and checked finite (one pass over its values). A tensor the config does not account for is an error.
 * A caller that streams the model (./streamed-weights.ts) leaves some tensors unread: they get a placeholder storage
 * and are read later by readWeight.
 */
import path from 'node:path';
import { InputError } from '../errors.js';
import type { HalfFormat } from '../gpu/half.js';
import {
  checkPackedTensors,
  isPackedCheckpoint,
  packedLayouts,
  packedTensorNames,
  QUANT_CONFIG_FILE,
  readPackedLinear,
  readQuantConfig,
} from '../io/packed-checkpoint.js';
import { openCheckpoint, type Checkpoint } from '../io/safetensors.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import { checkTensors, expectedTensorShapes, headTensorNames, resolveTensorName } from './checkpoint-tensors.js';
import { familyOf, readConfig } from './families/registry.js';
import type { LinearLayer } from './linear.js';
import type { CausalLM, ModelConfig } from './model.js';
import { PackedLinear } from './packed-linear.js';

/** The checkpoint dtypes whose values a tensor may keep in half storage on the GPU. */
const HALF_DTYPES: Partial<Record<string, HalfFormat>> = { F16: 'f16', BF16: 'bf16' };

export interface LoadOptions {
  dtype?: DType;
  /** Canonical names not to read (a packed checkpoint's quantized weights). */
  skip?: ReadonlySet<string>;
  /** Stored names another loader reads (a packed checkpoint's packed tensors): not unused. */
  readElsewhere?: ReadonlySet<string>;
  /** The storage of a tensor left unread for now (its values read later by readWeight), or null to read it here. */
  placeholder?: (canonical: string, shape: readonly number[]) => Float32Array | null;
}

/** One stored tensor's values as fp32 (or f64), checked finite. */
export function readWeight(ckpt: Checkpoint, stored: string, dtype: DType = 'f32'): Float32Array | Float64Array {
  const f32 = ckpt.readFiniteF32(stored);
  return dtype === 'f64' ? Float64Array.from(f32) : f32;
}

/** The model over `weights`; `linears` supplies layers (e.g. packed) for some linears instead of dense weights. */
export function buildModel(
  config: ModelConfig,
  weights: Map<string, Tensor>,
  linears: ReadonlyMap<string, LinearLayer> = new Map(),
): CausalLM {
  return familyOf(config).build(config, weights, linears);
}

/** Reads every expected tensor by its canonical name (aliases such as `decoder.*` resolved). */
export function loadWeights(dir: string, config: ModelConfig, options: LoadOptions = {}): Map<string, Tensor> {
  const ckpt = openCheckpoint(dir);
  try {
    const available = new Set(ckpt.names());
    const { lmHead } = headTensorNames(config);
    const skip = options.skip ?? new Set<string>();
    checkTensors(ckpt.path, config, ckpt, skip, options.readElsewhere);
    const weights = new Map<string, Tensor>();
    for (const [canonical, shape] of expectedTensorShapes(config)) {
      if (skip.has(canonical)) continue;
      // A tied model reuses the embedding as lm_head, even when the file also stores a copy.
      if (canonical === lmHead && config.tieWordEmbeddings) continue;
      const stored = resolveTensorName(available, canonical);
      if (stored === undefined) continue; // optional; checkTensors vetted the required ones
      const t = new Tensor(options.placeholder?.(canonical, shape) ?? readWeight(ckpt, stored, options.dtype), shape);
      t.halfSource = HALF_DTYPES[ckpt.info(stored).dtype] ?? null;
      weights.set(canonical, t);
    }
    return weights;
  } finally {
    ckpt.close();
  }
}

/** Loads a full-precision or a packed (quantized) checkpoint directory. */
export function loadModel(dir: string, options: LoadOptions = {}): CausalLM {
  const config = readConfig(dir);
  if (!isPackedCheckpoint(dir)) return buildModel(config, loadWeights(dir, config, options));
  if (options.dtype === 'f64') throw new Error(`${dir}: a packed checkpoint loads in fp32 only`);
  return loadPackedModel(dir, config);
}

/**
 * Dense tensors as usual; each quantized linear (and packed embedding table) straight from its packed tensors into
 * a PackedLinear. Every packed module's tensors are checked against the config before anything is read.
 */
function loadPackedModel(dir: string, config: ModelConfig): CausalLM {
  const layouts = packedLayouts(readQuantConfig(dir));
  const shapes = expectedTensorShapes(config);
  const shapeOf = (name: string): number[] => {
    const shape = shapes.get(`${name}.weight`);
    if (shape === undefined)
      throw new InputError(path.join(dir, QUANT_CONFIG_FILE), name, 'not a linear layer or embedding of this model');
    return shape;
  };
  const ckpt = openCheckpoint(dir);
  try {
    for (const [name, layout] of layouts) checkPackedTensors(ckpt, name, shapeOf(name), layout);
    const weights = loadWeights(dir, config, {
      skip: new Set([...layouts.keys()].map((n) => `${n}.weight`)),
      readElsewhere: new Set([...layouts.keys()].flatMap(packedTensorNames)),
    });
    const linears = new Map<string, LinearLayer>();
    for (const [name, layout] of layouts) {
      const packed = readPackedLinear(ckpt, name, shapeOf(name), layout);
      linears.set(name, new PackedLinear(packed, weights.get(`${name}.bias`) ?? null));
    }
    return buildModel(config, weights, linears);
  } finally {
    ckpt.close();
  }
}
