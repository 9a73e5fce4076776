/**
 * OWQ's weak-column count per linear (arXiv 2306.02272; xvyaward/owq main.py).
 *
 * target_bit t with b = wbits: the extra bits t - b buy fp16 columns at (16 - b) bits each beyond the b
 * they replace, spread over the L linear kinds of a block:
 *   r = 12 / (16 - b) * (t - b) / L,   n_out = round(in_features * r * ratio), rounded up to even
 * (ratio 1 for attention, 0.25 / 0.375 for the OPT / Llama MLP; round is Python's, half to even).
 * target_rank K: n_out = K in every linear.
 */
import type { ModelConfig } from '../io/hf-config.js';
import { roundHalfEven } from '../util/round.js';
import { linearShape, quantFamily } from './family.js';

export type WeakBudget = { targetBit: number } | { targetRank: number } | null;

/** n_out of every linear kind of a block (same in every block), by name relative to the block prefix. */
export function weakCounts(config: ModelConfig, wbits: number, budget: WeakBudget): Map<string, number> {
  const family = quantFamily(config);
  const counts = new Map<string, number>();
  for (const { name, owqRatio } of family.linears) {
    let nOut = 0;
    if (budget !== null && 'targetRank' in budget) nOut = budget.targetRank;
    else if (budget !== null) {
      const r = ((12 / (16 - wbits)) * (budget.targetBit - wbits)) / family.linears.length;
      nOut = roundHalfEven(linearShape(config, name)[1] * r * owqRatio);
      if (nOut % 2 === 1) nOut += 1;
    }
    counts.set(name, nOut);
  }
  return counts;
}
