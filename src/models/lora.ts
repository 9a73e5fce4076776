/**
 * LoRA on a whole model (docs/ARCHITECTURE.md section 6, the baseline WCT is compared with): adapters on the linears
 * of every block, their trainable parameters in a stable order, merging into a full-precision base, and
 * loading a PEFT adapter directory (src/io/peft-adapter.ts) over a model.
 */
import path from 'node:path';
import { kernelsFor } from '../native/addon.js';
import { InputError } from '../errors.js';
import { ADAPTER_WEIGHTS_FILE, peftKeys, readAdapter } from '../io/peft-adapter.js';
import { type Tensor, zeros } from '../tensor/tensor.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import { LoraLinear } from './lora-linear.js';
import type { CausalLM } from './model.js';
import { PackedLinear } from './packed-linear.js';
import { OptionError } from '../errors.js';

export interface LoraConfig {
  /** r: the adapters' rank, at most min(in_features, out_features) of every targeted linear. */
  rank: number;
  /** The adapter's output is scaled by alpha / rank. */
  alpha: number;
  /** Dropout on the adapter's input while training, in [0, 1). */
  dropout: number;
  /** 'all': every linear of each block; else names relative to the block prefix (self_attn.q_proj, mlp.down_proj, fc1). */
  targets: 'all' | string[];
}

/** Why `wct merge` and mergeLora refuse a packed base. */
export const MERGE_PACKED_REASON =
  'merging LoRA into packed low-bit weights would requantize them and lose the adapter’s precision; ' +
  'use the adapter as is (--adapter), or merge into the full-precision base and quantize afterwards';

/** The names of block 0's linears relative to the block prefix, in model order (the valid targets). */
function blockLinearNames(model: CausalLM): string[] {
  const prefix = `${model.blockPrefix(0)}.`;
  return [...model.linears().keys()].filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
}

/**
 * Wraps every targeted linear of every block in a LoraLinear (PEFT's init, trainable, `training` off) and
 * returns them by canonical name, blocks in order and within a block in model order. Everything is
 * checked before the model is changed: an unknown target or a rank outside [1, min(in, out)] of some
 * layer is a RangeError naming it.
 */
export function applyLora(model: CausalLM, cfg: LoraConfig, seed: number): Map<string, LoraLinear> {
  const valid = blockLinearNames(model);
  const targets = cfg.targets === 'all' ? valid : cfg.targets;
  if (targets.length === 0)
    throw new OptionError('lora.targets', 'LoRA targets: the list is empty (use "all" or name linears of a block)');
  for (const t of targets) {
    if (!valid.includes(t))
      throw new OptionError(
        'lora.targets',
        `LoRA target ${JSON.stringify(t)} is not a linear of this model's blocks (valid: ${valid.join(', ')})`,
      );
  }
  if (!(Number.isInteger(cfg.rank) && cfg.rank >= 1))
    throw new OptionError('lora.rank', `LoRA rank ${cfg.rank}: expected a positive integer`);
  const chosen: [string, LinearLayer, number][] = [];
  for (let i = 0; i < model.numBlocks; i++) {
    valid.forEach((t, k) => {
      if (!targets.includes(t)) return;
      const name = `${model.blockPrefix(i)}.${t}`;
      const layer = model.linears().get(name)!;
      if (layer instanceof LoraLinear) throw new RangeError(`LoRA: ${name} already has an adapter`);
      const max = Math.min(layer.inFeatures, layer.outFeatures);
      if (cfg.rank > max) {
        throw new OptionError(
          'lora.rank',
          `LoRA rank ${cfg.rank} is larger than ${name} allows: it is [${layer.outFeatures}, ${layer.inFeatures}], so rank <= ${max}`,
        );
      }
      chosen.push([name, layer, i * valid.length + k]);
    });
  }
  const out = new Map<string, LoraLinear>();
  for (const [name, base, index] of chosen) {
    // one seed per linear of the model, so a layer's init and masks do not depend on which others are targeted
    const layerSeed = (seed + Math.imul(index + 1, 0x9e3779b1)) >>> 0;
    out.set(name, new LoraLinear(base, { rank: cfg.rank, alpha: cfg.alpha, dropout: cfg.dropout, seed: layerSeed }));
  }
  for (const [name, lora] of out) model.setLinear(name, lora);
  return out;
}

/** The adapters of a model (every linear that is a LoraLinear), by canonical name in model order. */
export function loraLayersOf(model: CausalLM): Map<string, LoraLinear> {
  const out = new Map<string, LoraLinear>();
  for (const [name, layer] of model.linears()) if (layer instanceof LoraLinear) out.set(name, layer);
  return out;
}

/**
 * The trainable tensors of `layers` for an optimizer or a checkpoint: `<name>.lora_A.weight` then
 * `<name>.lora_B.weight` for each layer in the map's order (applyLora's: stable for a model and config),
 * and the switch of every layer's dropout (`training`).
 */
export function loraParameters(layers: ReadonlyMap<string, LoraLinear>): {
  names: string[];
  params: Tensor[];
  setTraining(on: boolean): void;
} {
  const names: string[] = [];
  const params: Tensor[] = [];
  for (const [name, l] of layers) {
    names.push(`${name}.lora_A.weight`, `${name}.lora_B.weight`);
    params.push(l.a, l.b);
  }
  return {
    names,
    params,
    setTraining: (on) => {
      for (const l of layers.values()) l.training = on;
    },
  };
}

/** W + scale · B A as a new tensor: W [out, in], B [out, r], A [r, in]; one plain gemm with beta = 1 (A, B share W's dtype). */
function mergedWeight(w: Tensor, lora: LoraLinear): Tensor {
  const merged = zeros(w.shape, w.dtype);
  merged.data.set(w.data);
  kernelsFor(merged.data).gemm(lora.b.data, lora.a.data, merged.data, {
    batch: 1,
    m: lora.outFeatures,
    n: lora.inFeatures,
    k: lora.rank,
    transA: false,
    transB: false,
    alpha: lora.scale,
    beta: 1,
    strideA: 0,
    strideB: 0,
    strideC: 0,
  });
  return merged;
}

/**
 * Folds every adapter into its dense base: W' = W + (alpha / r) B A, each LoraLinear replaced by a
 * DenseLinear over W' (a new tensor; the base's W is left as it was) and model.parameters()'s
 * `<name>.weight` pointed at W', so saving the model writes the merged weights. Returns the merged layers'
 * names. An adapter over a packed base is refused before anything changes (MERGE_PACKED_REASON).
 */
export function mergeLora(model: CausalLM): string[] {
  const layers = loraLayersOf(model);
  for (const [name, l] of layers) {
    if (l.base instanceof PackedLinear) throw new RangeError(`${name}: ${MERGE_PACKED_REASON}`);
    if (!(l.base instanceof DenseLinear))
      throw new RangeError(`${name}: cannot merge LoRA into a ${l.base.constructor.name} (a dense base is needed)`);
  }
  const params = model.parameters();
  for (const [name, l] of layers) {
    const base = l.base as DenseLinear;
    const merged = mergedWeight(base.weight, l);
    model.setLinear(name, new DenseLinear(merged, base.bias));
    params.set(`${name}.weight`, merged);
  }
  return [...layers.keys()];
}

/**
 * Loads the PEFT adapter directory `dir` over `model`: each adapted linear becomes a LoraLinear with the
 * file's weights, not trainable, dropout off. A module the model lacks or a shape that does not match its
 * layer is an InputError naming the file and the key; the model is changed only when all of them fit.
 */
export function loadAdapter(model: CausalLM, dir: string): Map<string, LoraLinear> {
  const { config, layers } = readAdapter(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_FILE);
  const linears = model.linears();
  const out = new Map<string, LoraLinear>();
  for (const [name, { a, b }] of layers) {
    const keys = peftKeys(name);
    const base = linears.get(name);
    if (base === undefined)
      throw new InputError(file, keys.a, `the model has no linear layer ${name} (is this adapter for another model?)`);
    if (base instanceof LoraLinear) throw new InputError(file, keys.a, `${name} already has an adapter`);
    if (a.shape[1] !== base.inFeatures) {
      throw new InputError(
        file,
        keys.a,
        `shape [${a.shape}] does not match ${name} (expected [${config.r}, ${base.inFeatures}])`,
      );
    }
    if (b.shape[0] !== base.outFeatures) {
      throw new InputError(
        file,
        keys.b,
        `shape [${b.shape}] does not match ${name} (expected [${base.outFeatures}, ${config.r}])`,
      );
    }
    if (config.r > Math.min(base.inFeatures, base.outFeatures)) {
      throw new InputError(
        file,
        keys.a,
        `r = ${config.r} exceeds min(in, out) = ${Math.min(base.inFeatures, base.outFeatures)} of ${name}`,
      );
    }
    const lora = new LoraLinear(base, {
      rank: config.r,
      alpha: config.lora_alpha,
      dropout: config.lora_dropout,
      seed: 0,
      weights: { a: a.data, b: b.data },
      trainable: false,
    });
    out.set(name, lora);
  }
  for (const [name, lora] of out) model.setLinear(name, lora);
  return out;
}
