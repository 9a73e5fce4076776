/**
 * OWQ's weak-column count per linear (arXiv 2306.02272; xvyaward/owq main.py).
 *
 * target_bit t with b = wbits: the extra bits t - b buy fp16 columns at (16 - b) bits each beyond the b
 * they replace, spread over the L linear kinds of a block:
 *   r = 12 / (16 - b) * (t - b) / L,   n_out = round(in_features * r * ratio), rounded up to even
 * (ratio 1 for attention, 0.25 / 0.375 for the OPT / Llama MLP, from the family spec; round is Python's,
 * half to even). target_rank K: n_out = K in every linear.
 */
import { familyOf } from '../models/families/registry.js';
import type { ModelConfig } from '../models/model.js';
import { roundHalfEven } from '../util/round.js';

export type WeakBudget = { targetBit: number } | { targetRank: number } | null;

/** n_out of every linear kind of a block (same in every block), by name relative to the block prefix. */
export function weakCounts(config: ModelConfig, wbits: number, budget: WeakBudget): Map<string, number> {
  const spec = familyOf(config);
  const linears = spec.blockLinears(config);
  const counts = new Map<string, number>();
  for (const { name, in: inFeatures } of linears) {
    let nOut = 0;
    if (budget !== null && 'targetRank' in budget) nOut = budget.targetRank;
    else if (budget !== null) {
      const r = ((12 / (16 - wbits)) * (budget.targetBit - wbits)) / linears.length;
      nOut = roundHalfEven(inFeatures * r * spec.quant.owqRatio[name]);
      if (nOut % 2 === 1) nOut += 1;
    }
    counts.set(name, nOut);
  }
  return counts;
}
