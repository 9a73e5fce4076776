/** Weak-column deltas on a loaded model: collect them from its packed linears, or load them over it. */
import { readWeakDeltas, type WeakColumns } from '../io/weak-deltas.js';
import type { CausalLM } from './model.js';
import { PackedLinear } from './packed-linear.js';

/** The packed linears of a model by canonical name (empty for a full-precision model). */
export function packedLinearsOf(model: CausalLM): Map<string, PackedLinear> {
  const out = new Map<string, PackedLinear>();
  for (const [name, layer] of model.linears()) if (layer instanceof PackedLinear) out.set(name, layer);
  return out;
}

/** Every packed linear's current weak columns (views, not copies). */
export function weakColumnsOf(model: CausalLM): Map<string, WeakColumns> {
  const out = new Map<string, WeakColumns>();
  for (const [name, l] of packedLinearsOf(model))
    out.set(name, { rows: l.outFeatures, nOut: l.packed.weakIdx.length, data: l.packed.weak });
  return out;
}

/** Loads deltas made for the packed checkpoint `baseDir` (the directory `model` was loaded from) over its weak columns. */
export function applyWeakDeltas(model: CausalLM, file: string, baseDir: string): void {
  const layers = packedLinearsOf(model);
  const expect = new Map(
    [...layers].map(([name, l]) => [name, [l.outFeatures, l.packed.weakIdx.length] as [number, number]]),
  );
  for (const [name, data] of readWeakDeltas(file, baseDir, expect)) layers.get(name)!.packed.weak.set(data);
}
