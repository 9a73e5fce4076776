/**
 * The model families by config.json `model_type`: the one place that lists them. config.json is read here into a
 * family's normalised config; every other module asks familyOf(config) for names, shapes, the builder and the
 * quantization description.
 */
import path from 'node:path';
import { readJsonObject } from '../../io/json-file.js';
import { checkConfigQuantization } from '../../io/packed-checkpoint.js';
import type { BpeConventions } from '../../io/tokenizer-bpe-files.js';
import { showValue } from '../../util/show-value.js';
import { ConfigFields } from './config-fields.js';
import { llamaFamily } from './llama.js';
import { optFamily } from './opt.js';
import { qwen2Family } from './qwen2.js';
import { qwen3Family } from './qwen3.js';
import type { FamilySpec, ModelConfig } from './spec.js';

const FAMILIES: readonly FamilySpec[] = [
  llamaFamily,
  qwen2Family,
  qwen3Family,
  optFamily,
] as unknown as readonly FamilySpec[];

/** model_types users reach for that no spec can run, with the reason (what the forward pass would need). */
const REFUSED: Readonly<Record<string, string>> = {
  gemma2:
    'Gemma 2 needs attention-logit soft-capping (tanh of the scaled scores inside softmax), which the CPU and GPU attention kernels do not do',
};

const BY_MODEL_TYPE = new Map(FAMILIES.flatMap((spec) => spec.modelTypes.map((t) => [t, spec] as const)));
const BY_ARCHITECTURE = new Map(FAMILIES.flatMap((spec) => Object.entries(spec.architectures)));

/** Every model_type this project reads, in registry order. */
export const MODEL_TYPES: readonly string[] = [...BY_MODEL_TYPE.keys()];

function modelTypeOf(f: ConfigFields): string {
  const supported = `supported: ${MODEL_TYPES.join(', ')}`;
  const type = f.value('model_type');
  const archs = f.value('architectures');
  if (type !== undefined) {
    if (typeof type === 'string' && BY_MODEL_TYPE.has(type)) return type;
    if (typeof type === 'string' && Object.hasOwn(REFUSED, type))
      f.fail('model_type', `${showValue(type)} is not supported: ${REFUSED[type]}`);
    f.fail('model_type', `${showValue(type)} is not supported (${supported})`);
  }
  const fromArch = Array.isArray(archs) ? archs.map((a) => BY_ARCHITECTURE.get(a as string)).find(Boolean) : undefined;
  if (fromArch) return fromArch;
  f.fail(
    'architectures',
    `${JSON.stringify(archs ?? null)} names no supported model and model_type is missing (${supported})`,
  );
}

/** The spec a normalised config belongs to (its model_type; configs of single-type families carry only the family). */
export function familyOf<C extends ModelConfig>(config: C): FamilySpec<C> {
  const spec = BY_MODEL_TYPE.get(config.modelType ?? config.family);
  if (spec === undefined) throw new Error(`no family spec for ${config.modelType ?? config.family}`);
  return spec as unknown as FamilySpec<C>;
}

/** Normalizes the parsed contents of a config.json; `file` names it in errors. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): ModelConfig {
  const f = new ConfigFields(file, raw);
  const modelType = modelTypeOf(f);
  return BY_MODEL_TYPE.get(modelType)!.parseConfig(f, modelType);
}

/** Reads and normalizes `<dir>/config.json`; a quantization_config other than this project's packed format's (another
 * tool's GPTQ / AWQ / ... checkpoint) is refused. */
export function readConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  const raw = readJsonObject(file);
  checkConfigQuantization(raw, file, dir);
  return parseConfig(raw, file);
}

/** The spec of config.json's `model_type`, or undefined. */
export function familyOfModelType(modelType: unknown): FamilySpec | undefined {
  return typeof modelType === 'string' ? BY_MODEL_TYPE.get(modelType) : undefined;
}

/** What the family of config.json's `model_type` says GPT-2 style tokenizer files mean (no family: GPT-2's own). */
export function bpeConventions(modelType: unknown): BpeConventions {
  return familyOfModelType(modelType)?.bpe ?? { specialTokensFromConfig: false };
}

/** The families, for checks that must hold for each (test/unit/families.test.ts). */
export function allFamilies(): readonly FamilySpec[] {
  return FAMILIES;
}
