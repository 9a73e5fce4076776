/**
 * LoRA adapters in PEFT's on-disk format, so `PeftModel.from_pretrained(base, dir)` loads ours and we
 * load PEFT's. A directory with two files:
 *
 * adapter_model.safetensors ({"format": "pt"} metadata), for every adapted linear `<name>` (its
 * canonical Hugging Face name, e.g. model.layers.0.self_attn.q_proj):
 *   base_model.model.<name>.lora_A.weight  F32 [r, in_features]
 *   base_model.model.<name>.lora_B.weight  F32 [out_features, r]
 * (PEFT's `get_peft_model_state_dict` keys: the PeftModel wrapper's `base_model.model.` prefix, the adapter
 * name `default` removed.) Reading also accepts F16 / BF16 / F64 (widened or narrowed to fp32).
 *
 * adapter_config.json, PEFT's LoraConfig fields:
 *   peft_type "LORA", task_type "CAUSAL_LM"
 *   r                        the rank
 *   lora_alpha               the adapter's output is scaled by lora_alpha / r
 *   lora_dropout             dropout on the adapter's input while training
 *   target_modules           the short module names adapted (["q_proj", "k_proj", ...]); PEFT matches
 *                            them against the end of each module name
 *   bias "none"              no bias is trained
 *   fan_in_fan_out false     weights stored [out, in] (true is GPT-2's Conv1D layout, not supported)
 *   inference_mode true      as PEFT writes it on save
 *   modules_to_save null     no other module is trained and saved
 *   base_model_name_or_path  the full-precision model the adapter was trained for (informational): the model
 *                            itself, or for a QLoRA adapter the checkpoint its packed base was quantized from
 *                            (quantization_config.json `source`; the packed base itself when that is not recorded)
 *   wct_packed_base          QLoRA only: the packed checkpoint it was trained on (not a PEFT field)
 *   init_lora_weights true   A kaiming-uniform, B zero
 *   use_rslora false         scale alpha / r, not alpha / sqrt(r)
 *   layers_to_transform null every block (the weights file lists the adapted layers exactly)
 * Reading checks every field this loader relies on and refuses PEFT features it does not implement
 * (rsLoRA, fan_in_fan_out, per-module rank / alpha patterns, modules_to_save, trained biases).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import { writeDirAtomic } from './checkpoint-write.js';
import { InputError } from '../errors.js';
import { isObject, readJsonObject } from './json-file.js';
import { isPackedCheckpoint, packedSource } from './packed-checkpoint.js';
import { openSafetensors } from './safetensors-read.js';
import { writeSafetensors, type TensorToWrite } from './safetensors-write.js';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
const KEY_PREFIX = 'base_model.model.';

/** adapter_config.json as written (the fields above). */
export interface PeftLoraConfig {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  bias: 'none';
  fan_in_fan_out: false;
  inference_mode: true;
  modules_to_save: null;
  base_model_name_or_path: string;
  /** The packed checkpoint a QLoRA adapter was trained on; absent for LoRA on a full-precision base. */
  wct_packed_base?: string;
  init_lora_weights: true;
  use_rslora: false;
  layers_to_transform: null;
}

export interface AdapterHyperparameters {
  rank: number;
  alpha: number;
  dropout: number;
}

/** One adapted linear: A [r, in], B [out, r] (fp32 when read; fp32 or f64 when written). */
export interface LoraWeights {
  a: Tensor;
  b: Tensor;
}

export interface Adapter {
  config: PeftLoraConfig;
  /** By canonical linear name, in the weights file's order. */
  layers: Map<string, LoraWeights>;
}

/** PEFT's key names for the linear `name`. */
export function peftKeys(name: string): { a: string; b: string } {
  return { a: `${KEY_PREFIX}${name}.lora_A.weight`, b: `${KEY_PREFIX}${name}.lora_B.weight` };
}

/** The short module names (last name component) of `names`, each once, in order of appearance. */
export function targetModules(names: Iterable<string>): string[] {
  return [...new Set([...names].map((n) => n.slice(n.lastIndexOf('.') + 1)))];
}

function asF32(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
}

/** What adapter_config.json records of the base `baseModel` the adapter was trained on (a path or a name). */
function baseFields(baseModel: string): Pick<PeftLoraConfig, 'base_model_name_or_path' | 'wct_packed_base'> {
  if (!isPackedCheckpoint(baseModel)) return { base_model_name_or_path: baseModel };
  return { base_model_name_or_path: packedSource(baseModel) ?? baseModel, wct_packed_base: baseModel };
}

/**
 * Writes the adapter directory `dir` atomically. An existing `dir` is replaced when it is empty or
 * already an adapter directory (a re-save), and refused otherwise (it may be a model). `baseModel` is the model
 * trained on: a packed checkpoint's adapter names its full-precision source as the base (see the header).
 */
export function writeAdapter(
  dir: string,
  layers: ReadonlyMap<string, LoraWeights>,
  cfg: AdapterHyperparameters,
  baseModel: string,
): void {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0 && !fs.existsSync(path.join(dir, ADAPTER_CONFIG_FILE))) {
    throw new InputError(
      dir,
      `exists and is not an adapter directory (no ${ADAPTER_CONFIG_FILE}); refusing to replace it`,
    );
  }
  const tensors: TensorToWrite[] = [];
  for (const [name, { a, b }] of layers) {
    const [r, k] = a.shape;
    const [n, rb] = b.shape;
    if (a.shape.length !== 2 || b.shape.length !== 2 || r !== cfg.rank || rb !== cfg.rank) {
      throw new Error(`writeAdapter: ${name}: A ${a} and B ${b} do not have rank ${cfg.rank}`);
    }
    const keys = peftKeys(name);
    tensors.push(
      { name: keys.a, dtype: 'F32', shape: [r, k], data: asF32(a) },
      { name: keys.b, dtype: 'F32', shape: [n, r], data: asF32(b) },
    );
  }
  const base = baseFields(baseModel);
  const config: PeftLoraConfig = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: cfg.rank,
    lora_alpha: cfg.alpha,
    lora_dropout: cfg.dropout,
    target_modules: targetModules(layers.keys()),
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    modules_to_save: null,
    ...base,
    init_lora_weights: true,
    use_rslora: false,
    layers_to_transform: null,
  };
  writeDirAtomic(dir, (tmp) => {
    writeSafetensors(path.join(tmp, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
    fs.writeFileSync(path.join(tmp, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
  });
}

/** Reads and checks adapter_config.json; absent optional fields get PEFT's defaults. */
export function readAdapterConfig(dir: string): PeftLoraConfig {
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  const raw = readJsonObject(file);
  const fail = (key: string, problem: string): never => {
    throw new InputError(file, key, `${problem}, got ${JSON.stringify(raw[key])}`);
  };
  if (raw.peft_type !== 'LORA') fail('peft_type', 'expected "LORA" (only LoRA adapters are supported)');
  if (!(Number.isInteger(raw.r) && (raw.r as number) >= 1)) fail('r', 'expected a positive integer');
  if (!(typeof raw.lora_alpha === 'number' && raw.lora_alpha > 0)) fail('lora_alpha', 'expected a positive number');
  const dropout = raw.lora_dropout ?? 0;
  if (!(typeof dropout === 'number' && dropout >= 0 && dropout < 1))
    fail('lora_dropout', 'expected a number in [0, 1)');
  const targets = raw.target_modules;
  if (!(typeof targets === 'string' || (Array.isArray(targets) && targets.every((t) => typeof t === 'string')))) {
    fail('target_modules', 'expected a list of module names');
  }
  if ((raw.bias ?? 'none') !== 'none') fail('bias', 'expected "none" (trained biases are not supported)');
  if ((raw.fan_in_fan_out ?? false) !== false) fail('fan_in_fan_out', 'expected false (weights stored [out, in])');
  if ((raw.use_rslora ?? false) !== false) fail('use_rslora', 'expected false (rsLoRA scaling is not supported)');
  if (raw.modules_to_save != null) fail('modules_to_save', 'expected null (only LoRA weights are loaded)');
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    if (raw[key] != null && !(isObject(raw[key]) && Object.keys(raw[key]).length === 0))
      fail(key, 'expected {} (per-module ranks / alphas are not supported)');
  }
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: raw.r as number,
    lora_alpha: raw.lora_alpha as number,
    lora_dropout: dropout as number,
    target_modules: typeof targets === 'string' ? [targets] : (targets as string[]),
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    modules_to_save: null,
    base_model_name_or_path: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : '',
    ...(typeof raw.wct_packed_base === 'string' ? { wct_packed_base: raw.wct_packed_base } : {}),
    init_lora_weights: true,
    use_rslora: false,
    layers_to_transform: null,
  };
}

/** Reads an adapter directory: its config, and A / B of every adapted linear, checked against the config's rank. */
export function readAdapter(dir: string): Adapter {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new InputError(
      dir,
      'not a directory (expected a PEFT adapter directory with adapter_config.json and adapter_model.safetensors)',
    );
  }
  const config = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_FILE);
  const st = openSafetensors(file);
  try {
    const names = new Set<string>();
    for (const key of st.names()) {
      const m = /^base_model\.model\.(.+)\.lora_[AB]\.weight$/.exec(key);
      if (m === null)
        throw new InputError(
          file,
          key,
          `not a LoRA weight (expected ${KEY_PREFIX}<module>.lora_A.weight or .lora_B.weight)`,
        );
      names.add(m[1]);
    }
    if (names.size === 0) throw new InputError(file, 'tensors', 'no LoRA weights in this file');
    const r = config.r;
    const layers = new Map<string, LoraWeights>();
    for (const name of names) {
      const keys = peftKeys(name);
      for (const key of [keys.a, keys.b])
        if (!st.has(key)) throw new InputError(file, key, `missing (the file has the other half of ${name}'s adapter)`);
      const a = st.info(keys.a);
      const b = st.info(keys.b);
      if (a.shape.length !== 2 || a.shape[0] !== r)
        throw new InputError(file, keys.a, `shape [${a.shape}] does not match r = ${r} (expected [${r}, in_features])`);
      if (b.shape.length !== 2 || b.shape[1] !== r)
        throw new InputError(
          file,
          keys.b,
          `shape [${b.shape}] does not match r = ${r} (expected [out_features, ${r}])`,
        );
      layers.set(name, {
        a: new Tensor(st.readFiniteF32(keys.a), a.shape),
        b: new Tensor(st.readFiniteF32(keys.b), b.shape),
      });
    }
    return { config, layers };
  } finally {
    st.close();
  }
}
