/** A training example: token ids with their next-token targets, the unit every data format is turned into. */
import { IGNORE_INDEX } from '../autograd/ops/loss.js';

export interface Example {
  ids: Int32Array;
  /** targets[t] = the token position t must predict (ids[t+1]) or IGNORE_INDEX (-100): prompt tokens, the last position */
  targets: Int32Array;
}

/**
 * ids with next-token targets: targets[t] = ids[t + 1] where that token is at or after `lossFrom`,
 * else IGNORE_INDEX; the last position has nothing to predict. lossFrom = 1 trains on every token.
 */
export function causalExample(ids: Int32Array, lossFrom: number): Example {
  const targets = new Int32Array(ids.length).fill(IGNORE_INDEX);
  for (let t = Math.max(lossFrom, 1) - 1; t + 1 < ids.length; t++) targets[t] = ids[t + 1];
  return { ids, targets };
}

/** Token count of an example's loss positions (targets that are not IGNORE_INDEX). */
export function lossTokenCount(example: Example): number {
  let n = 0;
  for (const t of example.targets) if (t !== IGNORE_INDEX) n++;
  return n;
}
