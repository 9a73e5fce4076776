/**
 * The golden-logit checks shared by the CPU and GPU model tests: values from independent PyTorch references of HF's
 * Llama and OPT (../shared/data/golden/*.json): top-10 ids equal, logits within 1e-4 absolute, mean NLL within 1e-5
 * relative. The model runs wherever its weights are; logits are read back with toHost.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { tokenNll } from '../../src/autograd/index.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import type { CausalLM } from '../../src/models/model.js';
import { hostValues, toHost } from '../../src/tensor/device.js';
import { dataDir } from './paths.js';

export const LOGIT_ABS_TOL = 1e-4;
export const NLL_REL_TOL = 1e-5;

export interface Golden {
  token_ids: number[];
  mean_nll: number;
  positions: Record<
    string,
    { top10_ids: number[]; top10_logits: number[]; logit_l2: number; logit_mean: number; first8: number[] }
  >;
  greedy_from_bos_64?: number[];
}

export function golden(name: string): Golden {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'golden', `${name}.json`), 'utf8')) as Golden;
}

function topK(row: Float32Array, k: number): number[] {
  return Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k);
}

/** The model's logits over the golden token ids match the reference's. */
export async function checkAgainstGolden(model: CausalLM, g: Golden): Promise<void> {
  const ids = Int32Array.from(g.token_ids);
  const logits = model.forward(ids, { batch: 1 });
  const vocab = logits.shape[2];
  const values = await toHost(logits);
  for (const [pos, want] of Object.entries(g.positions)) {
    const row = values.subarray(Number(pos) * vocab, (Number(pos) + 1) * vocab) as Float32Array;
    expect(topK(row, 10), `top-10 ids at position ${pos}`).toEqual(want.top10_ids);
    want.top10_ids.forEach((id, i) => expect(Math.abs(row[id] - want.top10_logits[i])).toBeLessThan(LOGIT_ABS_TOL));
    want.first8.forEach((v, i) => expect(Math.abs(row[i] - v)).toBeLessThan(LOGIT_ABS_TOL));
    const l2 = Math.sqrt(row.reduce((s, v) => s + v * v, 0));
    expect(Math.abs(l2 - want.logit_l2) / want.logit_l2).toBeLessThan(NLL_REL_TOL * 10);
  }
  const { nll: onDevice, count } = tokenNll(logits, shiftedTargets(ids, ids.length));
  const nll = (await hostValues(onDevice)) as Float32Array;
  let nllSum = 0;
  for (const v of nll) nllSum += v;
  const meanNll = nllSum / count;
  expect(Math.abs(meanNll - g.mean_nll) / g.mean_nll).toBeLessThan(NLL_REL_TOL);
}
