/**
 * The shared-context scorer (src/eval/zeroshot/loglikelihood.ts: the context once into a rewound KV cache) against
 * the plain definition: one full forward of (ctx + cont)[-(L+1):][:-1] per request, log-softmax at the continuation
 * positions. Includes requests cut from the left (longer than the model's 512 positions), an empty continuation,
 * a one-token continuation, and the trailing-whitespace move of lm-eval's _encode_pair.
 */
import { describe, expect, it } from 'vitest';
import { encodeRequest, scoreContinuations } from '../../src/eval/zeroshot/loglikelihood.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const model = loadModel(tinyStoriesDir);
const tokenizer = loadTokenizer(tinyStoriesDir);
const L = model.config.maxPositions;

/** ll and greedy of one request by a full forward of its (cut) input. */
function plainScore(ctx: Int32Array, cont: Int32Array): { ll: number; greedy: boolean } {
  if (cont.length === 0) return { ll: 0, greedy: true };
  const whole = Int32Array.from([...ctx, ...cont]);
  const input = whole.subarray(Math.max(0, whole.length - 1 - L), whole.length - 1);
  const logits = model.forward(input, { batch: 1 }).data as Float32Array;
  const V = model.config.vocabSize;
  let [ll, greedy] = [0, true];
  cont.forEach((token, j) => {
    const row = Array.from(
      logits.subarray((input.length - cont.length + j) * V, (input.length - cont.length + j + 1) * V),
    );
    const max = Math.max(...row);
    ll += row[token] - max - Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    greedy &&= row.indexOf(max) === token;
  });
  return { ll, greedy };
}

describe('zero-shot scoring', () => {
  it('one cached context against several continuations equals a full forward per request', async () => {
    const long = 'Once upon a time there was a little dog who liked to run in the park. '.repeat(50);
    const cases = [
      { context: 'Question: What do cats like?\nAnswer:', choices: [' milk', ' to sleep in the sun all day', ''] },
      { context: long, choices: [' The end.', ' He was happy and he played with his friends every day.'] },
    ];
    const cache = model.newCache(L);
    for (const { context, choices } of cases) {
      const requests = choices.map((c) => encodeRequest(tokenizer, context, c, false));
      const got = await scoreContinuations(
        model,
        cache,
        requests[0].ctx,
        requests.map((r) => r.cont),
        L,
      );
      requests.forEach((r, i) => {
        const want = plainScore(r.ctx, r.cont);
        expect(Math.abs(got[i].ll - want.ll), `${JSON.stringify(choices[i])}`).toBeLessThan(1e-4);
        expect(got[i].greedy).toBe(want.greedy);
      });
    }
    expect(encodeRequest(tokenizer, long, ' x', false).ctx.length).toBeGreaterThan(L); // the second case is cut
    expect(cache.length).toBe(0);
  });

  it("trailing whitespace of the context moves into the continuation (lm-eval's _encode_pair)", () => {
    const a = encodeRequest(tokenizer, 'Answer: ', 'yes', false);
    const b = encodeRequest(tokenizer, 'Answer:', ' yes', false);
    expect(Array.from(a.ctx)).toEqual(Array.from(b.ctx));
    expect(Array.from(a.cont)).toEqual(Array.from(b.cont));
    const bos = encodeRequest(tokenizer, 'Answer:', ' yes', true);
    expect(Array.from(bos.ctx)).toEqual([tokenizer.bosTokenId, ...b.ctx]);
    expect(Array.from(bos.cont)).toEqual(Array.from(b.cont));
  });
});
