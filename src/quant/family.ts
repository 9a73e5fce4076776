/**
 * Per-family quantization description (configs/families/<family>.json): which linears of a decoder
 * block are quantized, OWQ's weak-column ratio of each, and the --true-sequential groups. Families
 * differ in this data, not in copied drivers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../io/errors.js';
import { blockLinears, type ModelConfig } from '../io/hf-config.js';
import { packageRoot } from '../util/package-root.js';

export interface FamilyLinear {
  /** Name relative to the block prefix, e.g. self_attn.q_proj. */
  name: string;
  /** OWQ's weak-column ratio: 1 for attention projections, 0.25 (OPT) / 0.375 (Llama) for the MLP. */
  owqRatio: number;
}

export interface QuantFamily {
  linears: FamilyLinear[];
  /** Groups quantized one after another under --true-sequential, in forward order. */
  sequential: string[][];
}

interface FamilyFile {
  linears: Record<string, { owqRatio: number }>;
  sequential: string[][];
}

const cache = new Map<string, QuantFamily>();

export function quantFamily(config: ModelConfig): QuantFamily {
  const known = cache.get(config.family);
  if (known !== undefined) return known;
  const file = path.join(packageRoot(), 'configs', 'families', `${config.family}.json`);
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as FamilyFile;
  const names = (list: string[]) => [...list].sort().join(', ');
  const expected = names(blockLinears(config).map((l) => l.name));
  if (names(Object.keys(raw.linears)) !== expected || names(raw.sequential.flat()) !== expected) {
    throw new InputError(file, 'linears / sequential', `expected each of the block linears ${expected} exactly once`);
  }
  const family: QuantFamily = {
    linears: Object.entries(raw.linears).map(([name, v]) => ({ name, owqRatio: v.owqRatio })),
    sequential: raw.sequential,
  };
  cache.set(config.family, family);
  return family;
}

/** [outFeatures, inFeatures] of a block linear, from the config (every block has the same shapes). */
export function linearShape(config: ModelConfig, name: string): [number, number] {
  const linear = blockLinears(config).find((l) => l.name === name);
  if (linear === undefined) throw new Error(`quant: ${config.family} has no linear ${name}`);
  return [linear.out, linear.in];
}
