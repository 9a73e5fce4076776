/**
 * Weak-column deltas on a loaded model: collect them (weak columns and outliers) from its packed linears, or
 * load them over it.
 */
import { readWeakDeltas, type DeltasLayout, type WeakColumns } from '../io/weak-deltas.js';
import type { CausalLM } from './model.js';
import { PackedLinear } from './packed-linear.js';

/** The packed linears of a model by canonical name (empty for a full-precision model). */
export function packedLinearsOf(model: CausalLM): Map<string, PackedLinear> {
  const out = new Map<string, PackedLinear>();
  for (const [name, layer] of model.linears()) if (layer instanceof PackedLinear) out.set(name, layer);
  return out;
}

/** Every packed linear's current weak columns and outliers (views, not copies). */
export function weakColumnsOf(model: CausalLM): Map<string, WeakColumns> {
  const out = new Map<string, WeakColumns>();
  for (const [name, l] of packedLinearsOf(model)) {
    const o = l.packed.outliers;
    out.set(name, {
      rows: l.outFeatures,
      nOut: l.packed.weakIdx.length,
      data: l.packed.weak,
      ...(o === undefined ? {} : { outliers: { rowPtr: o.rowPtr, colIdx: o.colIdx, values: o.values } }),
    });
  }
  return out;
}

/**
 * Loads deltas made for the packed checkpoint `baseDir` (the directory `model` was loaded from) over its weak
 * columns and outlier values (what the file carries); outlier positions other than the base's are refused.
 */
export function applyWeakDeltas(model: CausalLM, file: string, baseDir: string): void {
  const layers = packedLinearsOf(model);
  const expect = new Map<string, DeltasLayout>();
  for (const [name, l] of layers) {
    const o = l.packed.outliers;
    expect.set(name, {
      rows: l.outFeatures,
      nOut: l.packed.weakIdx.length,
      ...(o === undefined ? {} : { outliers: { rowPtr: o.rowPtr, colIdx: o.colIdx } }),
    });
  }
  for (const [name, d] of readWeakDeltas(file, baseDir, expect)) {
    const p = layers.get(name)!.packed;
    if (d.weak !== undefined) p.weak.set(d.weak);
    if (d.outliers !== undefined) p.outliers!.values.set(d.outliers);
  }
}
